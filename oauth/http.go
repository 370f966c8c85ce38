package oauth

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrRedirect is matched by a request refused because the server answered with a
// redirect. OAuth and Lakebase endpoints never redirect, and every request this
// package makes carries a secret (a client secret, a grant, a token), so none is
// ever resent to where a redirect points.
var ErrRedirect = errors.New("oauth: redirect refused")

// httpClient returns c (or http.DefaultClient) with redirects refused; the caller's
// client is not modified.
func httpClient(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	n := *c
	n.CheckRedirect = refuseRedirect
	return &n
}

func refuseRedirect(req *http.Request, via []*http.Request) error {
	return fmt.Errorf("%w: %s answered with a redirect to %s; a request that carries a secret is never resent elsewhere (check the workspace URL and any proxy)",
		ErrRedirect, redactURL(via[0].URL.String()), redactURL(req.URL.String()))
}
