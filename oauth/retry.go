package oauth

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// Retry is the retry policy for transient failures (httpx.Retry).
type Retry = httpx.Retry

// NotProcessed reports whether a failed request certainly never reached the
// server's processing: the connection was never made (dial error, refused), or the
// server answered 429 or 503 with Retry-After (it declined the request). Only such
// failures may be retried with a single-use grant (a refresh token, an authorization
// code): a lost answer may mean the grant was redeemed, and redeeming it again would
// make the identity provider revoke the whole token family.
func NotProcessed(err error) bool {
	var te *TokenError
	if errors.As(err, &te) && te.StatusCode != 0 {
		return (te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusServiceUnavailable) && te.wait > 0
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de) || errors.Is(err, syscall.ECONNREFUSED)
}

func parseRetryAfter(h http.Header) time.Duration { return httpx.ParseRetryAfter(h) }
