package oauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestS256Challenge_RFC7636Vector(t *testing.T) {
	if got := S256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("challenge = %s", got)
	}
	v := NewVerifier()
	if len(v) < 43 || len(v) > 128 || v == NewVerifier() {
		t.Fatalf("verifier %d chars", len(v))
	}
}

func TestAuthCodeURL_CarriesPKCEAndState(t *testing.T) {
	tc := &TokenClient{ClientID: "databricks-cli", Discovery: &Discovery{Override: oauth2.Endpoint{
		AuthURL: "https://w.example/oidc/v1/authorize", TokenURL: "https://w.example/oidc/v1/token"}}}
	u, err := tc.AuthCodeURL(context.Background(), "http://localhost:8020", "all-apis offline_access", "st", "ver")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"response_type=code", "client_id=databricks-cli", "redirect_uri=http%3A%2F%2Flocalhost%3A8020",
		"scope=all-apis+offline_access", "state=st", "code_challenge_method=S256", "code_challenge=" + S256Challenge("ver")} {
		if !strings.Contains(u, want) {
			t.Fatalf("%s lacks %s", u, want)
		}
	}
	if strings.Contains(u, "ver&") || strings.HasSuffix(u, "=ver") {
		t.Fatal("the URL holds the verifier")
	}
}

func TestJWTExpiry(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"exp": 1900000000, "sub": "x"}`))
	if got := JWTExpiry("h." + payload + ".s"); !got.Equal(time.Unix(1900000000, 0)) {
		t.Fatalf("exp = %v", got)
	}
	for _, bad := range []string{"", "opaque", "a.b.c", "h." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":1}`)) + ".s"} {
		if !JWTExpiry(bad).IsZero() {
			t.Fatalf("JWTExpiry(%q) not zero", bad)
		}
	}
}

func TestRetry_TransientRetriedPermanentNot(t *testing.T) {
	r := Retry{MaxAttempts: 4, Base: time.Millisecond, Max: 2 * time.Millisecond}
	n := 0
	err := r.Do(context.Background(), func(context.Context) error {
		n++
		return &TokenError{Op: "x", StatusCode: 503}
	}, nil)
	if n != 4 || err == nil {
		t.Fatalf("503: %d attempts, %v", n, err)
	}
	for _, perm := range []error{
		&TokenError{Op: "x", StatusCode: 400, Code: "invalid_grant"},
		&TokenError{Op: "x", StatusCode: 401, Code: "invalid_client"},
		&TokenError{Op: "x", StatusCode: 404},
		errors.New("plain"),
	} {
		n = 0
		r.Do(context.Background(), func(context.Context) error { n++; return perm }, nil)
		if n != 1 {
			t.Fatalf("%v was retried %d times", perm, n-1)
		}
	}
	n = 0
	var waited time.Duration
	r.Do(context.Background(), func(context.Context) error {
		n++
		if n == 1 {
			return &TokenError{Op: "x", StatusCode: 429, wait: 20 * time.Millisecond}
		}
		return nil
	}, func(_ int, wait time.Duration, _ error) { waited = wait })
	if n != 2 || waited != 20*time.Millisecond {
		t.Fatalf("429 with Retry-After: %d attempts, waited %v", n, waited)
	}
	h := http.Header{"Retry-After": {"3"}}
	if parseRetryAfter(h) != 3*time.Second {
		t.Fatal("Retry-After seconds")
	}
}
