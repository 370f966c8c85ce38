package oauth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/settings"
)

// A server that must never be reached: it counts what it gets.
func trap(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"access_token":"stolen","token":"stolen","expires_in":3600}`))
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func redirectTo(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.Path, http.StatusTemporaryRedirect)
	})
}

// No request carrying a secret follows a redirect: not the client secret to the
// token endpoint, not the workspace token to the credential API, not https to http;
// with the default client and with a caller's client that would follow.
func TestRedirects_NeverFollowedWithASecret(t *testing.T) {
	evil, hits := trap(t)
	tlsRedirect := httptest.NewTLSServer(redirectTo(evil.URL)) // https → http
	defer tlsRedirect.Close()
	plainRedirect := httptest.NewServer(redirectTo(evil.URL))
	defer plainRedirect.Close()
	following := &http.Client{Transport: tlsRedirect.Client().Transport} // follows redirects by default

	for name, hc := range map[string]*http.Client{"default client": nil, "caller's client": following} {
		for _, base := range []string{plainRedirect.URL, tlsRedirect.URL} {
			if hc == nil && strings.HasPrefix(base, "https") {
				continue // the default client does not trust the test CA
			}
			tc := &TokenClient{HTTP: hc, ClientID: "id", ClientSecret: "SECRET",
				Discovery: &Discovery{Override: oauth2.Endpoint{AuthURL: base + "/authorize", TokenURL: base + "/oidc/v1/token"}}}
			_, err := tc.ClientCredentials(context.Background(), "all-apis")
			if !errors.Is(err, ErrRedirect) || !strings.Contains(err.Error(), "redirect") {
				t.Fatalf("%s, token endpoint %s: %v", name, base, err)
			}
			if _, err := tc.Refresh(context.Background(), "SECRET-RT"); !errors.Is(err, ErrRedirect) {
				t.Fatalf("%s, refresh: %v", name, err)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

// countingToken answers the token endpoint with status (and Retry-After when set).
func countingToken(t *testing.T, status int, retryAfter string) (*TokenClient, *atomic.Int64) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(`{"error":"temporarily_unavailable"}`))
	}))
	t.Cleanup(s.Close)
	tc := &TokenClient{ClientID: "id", ClientSecret: "s", Retry: Retry{MaxAttempts: 4, Base: time.Millisecond, Max: 2 * time.Millisecond},
		Discovery: &Discovery{Override: oauth2.Endpoint{AuthURL: s.URL, TokenURL: s.URL}}}
	return tc, &n
}

// A single-use grant whose answer may have been lost is not sent again; one the
// server declined (429/503 with Retry-After) or that never left for a moment's
// reason (a network unreachable) is; one refused by a port nothing listens on is a
// mistake no retry heals. Client credentials keep retrying on 5xx.
func TestSingleUseGrants_RetriedOnlyWhenNotProcessed(t *testing.T) {
	ctx := context.Background()
	for _, status := range []int{http.StatusBadGateway, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		tc, n := countingToken(t, status, "")
		tc.Refresh(ctx, "rt")
		tc.Exchange(ctx, "code", "verifier", "http://localhost:8020")
		if n.Load() != 2 {
			t.Fatalf("HTTP %d: %d requests for one refresh and one exchange, want 2", status, n.Load())
		}
		tc.ClientCredentials(ctx, "all-apis")
		if n.Load() != 2+4 {
			t.Fatalf("HTTP %d: client credentials made %d requests, want 4", status, n.Load()-2)
		}
	}
	tc, n := countingToken(t, http.StatusServiceUnavailable, "0")
	tc.Retry.Max = time.Millisecond
	if tc.Refresh(ctx, "rt"); n.Load() != 1 {
		// Retry-After: 0 is no promise; only a positive wait counts.
		t.Fatalf("503 with Retry-After 0: %d requests", n.Load())
	}
	tc, n = countingToken(t, http.StatusTooManyRequests, "1")
	start := time.Now()
	tc.Retry.MaxAttempts = 2
	if tc.Refresh(ctx, "rt"); n.Load() != 2 || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("429 with Retry-After 1: %d requests", n.Load())
	}

	// A network unreachable for a moment: the request never left, so it is retried.
	var retries atomic.Int64
	unreachable := &TokenClient{ClientID: "id", Retry: Retry{MaxAttempts: 3, Base: time.Millisecond, Max: time.Millisecond},
		HTTP: &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ENETUNREACH}
		})},
		Discovery: &Discovery{Override: oauth2.Endpoint{AuthURL: "https://w.example", TokenURL: "https://w.example/token"}},
		OnRetry:   func(string, int, time.Duration, error) { retries.Add(1) }}
	if _, err := unreachable.Refresh(ctx, "rt"); err == nil || retries.Load() != 2 {
		t.Fatalf("network unreachable: %d retries, %v", retries.Load(), err)
	}

	// Connection refused: a wrong port, not a moment: not retried, and it says so.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	retries.Store(0)
	dead := &TokenClient{ClientID: "id", Retry: Retry{MaxAttempts: 3, Base: time.Millisecond, Max: time.Millisecond},
		Discovery: &Discovery{Override: oauth2.Endpoint{AuthURL: "http://" + addr, TokenURL: "http://" + addr}},
		OnRetry:   func(string, int, time.Duration, error) { retries.Add(1) }}
	if _, err := dead.Refresh(ctx, "rt"); err == nil || retries.Load() != 0 || !strings.Contains(err.Error(), "refused the connection") {
		t.Fatalf("connection refused: %d retries, %v", retries.Load(), err)
	}
}

// Discovered endpoints must be https (loopback aside) before they are used or
// handed to a browser.
func TestDiscovery_RefusesPlainHTTPEndpoints(t *testing.T) {
	for _, doc := range []string{
		`{"authorization_endpoint":"http://evil.example/authorize","token_endpoint":"https://w.example/token"}`,
		`{"authorization_endpoint":"https://w.example/authorize","token_endpoint":"http://evil.example/token"}`,
		`{"authorization_endpoint":"javascript:alert(1)","token_endpoint":"https://w.example/token"}`,
	} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(doc)) }))
		_, err := (&Discovery{Workspace: s.URL}).Endpoints(context.Background())
		s.Close()
		if err == nil || !strings.Contains(err.Error(), "https") {
			t.Fatalf("%s: %v", doc, err)
		}
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"authorization_endpoint":"http://127.0.0.1:1/authorize","token_endpoint":"https://w.example/token"}`))
	}))
	defer s.Close()
	if _, err := (&Discovery{Workspace: s.URL}).Endpoints(context.Background()); err != nil {
		t.Fatalf("loopback http: %v", err)
	}
}

// A stored workspace token stops being handed out well before its expiry (Databricks
// has refused tokens in their last ~30 s): a fifth of its lifetime, 30 s to 5 min.
func TestTokenSkew_BasedOnLifetime(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		life, want time.Duration
	}{{time.Hour, 5 * time.Minute}, {10 * time.Minute, 2 * time.Minute}, {time.Minute, 30 * time.Second}} {
		e := &settings.StoredToken{AccessToken: "a", Updated: now, Expiry: now.Add(c.life)}
		if got := TokenSkew(e); got != c.want {
			t.Fatalf("lifetime %v: skew %v, want %v", c.life, got, c.want)
		}
	}
	// A one-hour token 4 minutes before expiry is refreshed, not handed out.
	e := &settings.StoredToken{AccessToken: "a", Updated: now.Add(-56 * time.Minute), Expiry: now.Add(4 * time.Minute)}
	if ValidFor(e.Token(), now, TokenSkew(e)) {
		t.Fatal("a token 4 minutes from expiry was still handed out")
	}
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
