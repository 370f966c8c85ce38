// Package httpx is the HTTP plumbing of the driver's clients (OAuth and the
// workspace REST API): a client copy that refuses redirects, retries with backoff
// for transient failures, URL redaction, the hint for permanent transport
// mistakes, the loopback-host check, and the User-Agent. It imports nothing of the
// driver.
package httpx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrRedirect is matched by a request refused because the server answered with a
// redirect. OAuth and Lakebase endpoints never redirect, and every request the
// driver makes carries a secret (a client secret, a grant, a token), so none is
// ever resent to where a redirect points.
var ErrRedirect = errors.New("lakebase: a redirect was refused")

// Client returns c (or http.DefaultClient) with redirects refused; the caller's
// client is not modified.
func Client(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	n := *c
	n.CheckRedirect = refuseRedirect
	return &n
}

func refuseRedirect(req *http.Request, via []*http.Request) error {
	return fmt.Errorf("%w: %s answered with a redirect to %s; a request that carries a secret is never resent elsewhere (check the workspace URL and any proxy)",
		ErrRedirect, RedactURL(via[0].URL.String()), RedactURL(req.URL.String()))
}

// RedactURLError drops the URL (which may carry a query) from a transport error,
// keeping the cause.
func RedactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s %s: %w", ue.Op, RedactURL(ue.URL), ue.Err)
	}
	return err
}

// RedactURL is raw without its query, user and fragment.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

// IsLoopbackHost reports whether h (a host name or IP, brackets allowed) is
// localhost or a loopback address.
func IsLoopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Retry policy for transient failures (5xx, 429, transport errors): capped
// exponential backoff with full jitter, honouring Retry-After. Permanent errors
// (invalid_client, invalid_grant, 4xx) are never retried.
type Retry struct {
	MaxAttempts int           // total attempts; default 8
	Base        time.Duration // first backoff; default 100ms
	Max         time.Duration // cap on one backoff; default 3s
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 8
	}
	if r.Base <= 0 {
		r.Base = 100 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 3 * time.Second
	}
	return r
}

// RetryAfterer is an error from a response with a Retry-After header.
type RetryAfterer interface{ RetryAfter() time.Duration }

// Do runs fn until it succeeds, fails permanently, runs out of attempts, or ctx ends.
// onRetry, if set, is told of each retry.
func (r Retry) Do(ctx context.Context, fn func(context.Context) error, onRetry func(attempt int, wait time.Duration, err error)) error {
	return r.DoIf(ctx, fn, IsTemporary, onRetry)
}

// DoIf is Do with its own test of which errors are worth another attempt.
func (r Retry) DoIf(ctx context.Context, fn func(context.Context) error, retryable func(error) bool, onRetry func(attempt int, wait time.Duration, err error)) error {
	r = r.withDefaults()
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(ctx); err == nil || !retryable(err) || attempt >= r.MaxAttempts {
			return err
		}
		backoff := r.Base << (attempt - 1)
		if backoff > r.Max || backoff <= 0 {
			backoff = r.Max
		}
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		if ra, ok := err.(RetryAfterer); ok && ra.RetryAfter() > 0 {
			wait = min(ra.RetryAfter(), 30*time.Second)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // no time left for another attempt
		}
		if onRetry != nil {
			onRetry(attempt, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// IsTemporary reports whether err is a transient failure worth retrying: it says
// so through a Temporary() bool method.
func IsTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// ParseRetryAfter reads a Retry-After header (seconds or an HTTP date).
func ParseRetryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// TransportFailure reports whether a request that got no answer (status 0) failed
// in a way a retry may heal: not a refused redirect, not a permanent mistake.
func TransportFailure(status int, err error) bool {
	return status == 0 && err != nil && !errors.Is(err, ErrRedirect) && TransportHint(err) == ""
}

// NotSent reports whether a request that failed with err (no answer) provably
// never reached the server: it failed while resolving the host or dialing it, in
// the TLS handshake (a certificate that does not verify, a server that does not
// speak TLS), or at a redirect the client refused (the server answered). Any
// other failure (a timeout, a connection reset or closed once the request may
// have gone out) may have left the request carried out.
func NotSent(err error) bool {
	if err == nil {
		return false
	}
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.Is(err, ErrRedirect), TransportHint(err) != "":
		return true
	case errors.As(err, &de):
		return true
	case errors.As(err, &oe) && oe.Op == "dial":
		return true
	}
	return false
}

// orOtherHost names the properties besides DatabricksInstance that can name the
// host of an OAuth or workspace request.
const orOtherHost = " (or in OAuthAccessTokenURL, OAuthAuthorizationURL, LoginHost, AzureAuthorityHost or AzureMSIEndpoint when one of them names this host)"

// TransportHint says what to do about a transport failure that no retry can heal
// (a mistake in the connection string: a host that does not exist, a port nothing
// listens on, http against https; or a certificate that does not verify); "" for
// the others (a name server or network that failed for a moment, a timeout, a
// connection reset), which a retry may heal.
func TransportHint(err error) string {
	if err == nil {
		return ""
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return "; the host " + de.Name + " does not exist: check the host name in DatabricksInstance" + orOtherHost
	case errors.Is(err, syscall.ECONNREFUSED):
		return "; the host refused the connection (nothing listens on that port): check the port in DatabricksInstance" + orOtherHost
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "; the server speaks http, not https: write http:// in DatabricksInstance for a loopback emulator"
	case errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return "; the workspace's TLS certificate does not verify (a proxy that inspects TLS needs its CA in the system roots or SSL_CERT_FILE)"
	case errors.As(err, &rh):
		return "; the server did not answer TLS: check DatabricksInstance (http:// for a loopback emulator)"
	}
	return ""
}

// UserAgent is the User-Agent of the driver's requests, as the Databricks SDKs
// send theirs: "lakebase-go/<version> go/<go version> os/<os> auth/<scheme>".
func UserAgent(version, auth string) string {
	ua := "lakebase-go/" + version + " go/" + strings.TrimPrefix(runtime.Version(), "go") + " os/" + runtime.GOOS
	if auth != "" {
		ua += " auth/" + auth
	}
	return ua
}

// WithUserAgent returns a copy of c (or of http.DefaultClient) whose requests carry
// the User-Agent ua.
func WithUserAgent(c *http.Client, ua string) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	n := *c
	base := n.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	n.Transport = &userAgent{base: base, ua: ua}
	return &n
}

type userAgent struct {
	base http.RoundTripper
	ua   string
}

func (u *userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Header.Set("User-Agent", u.ua)
	return u.base.RoundTrip(r2)
}

// CloseIdleConnections passes through, so a client's owner can still close them.
func (u *userAgent) CloseIdleConnections() {
	if c, ok := u.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
