package oauth

import "github.com/lakebase-go/lakebase/internal/httpx"

// ErrRedirect is matched by a request refused because the server answered with a
// redirect. OAuth and Lakebase endpoints never redirect, and every request this
// package makes carries a secret (a client secret, a grant, a token), so none is
// ever resent to where a redirect points.
//
// Deprecated: match lakebase.ErrRedirect, the same error.
var ErrRedirect = httpx.ErrRedirect
