package oauth

import (
	"net/http"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// ErrRedirect is matched by a request refused because the server answered with a
// redirect. OAuth and Lakebase endpoints never redirect, and every request this
// package makes carries a secret (a client secret, a grant, a token), so none is
// ever resent to where a redirect points.
var ErrRedirect = httpx.ErrRedirect

// httpClient returns c (or http.DefaultClient) with redirects refused.
func httpClient(c *http.Client) *http.Client { return httpx.Client(c) }

func redactURLError(err error) error { return httpx.RedactURLError(err) }

func redactURL(raw string) string { return httpx.RedactURL(raw) }
