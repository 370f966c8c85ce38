package lakebase_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// CredentialLifetime is the ttl of the Autoscaling credential request; the
// credential's expiry is the one the service answers; values outside 300-3600 s
// are refused when the string is parsed.
func TestCredentialLifetime_IsTheTTLAskedFor(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	c, err := lakebase.NewConnector(e.OAuthClientDSN("CredentialLifetime=600"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := time.Now()
	li, err := c.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := li.Expiry.Sub(before); d < 590*time.Second || d > 610*time.Second+time.Since(before) {
		t.Fatalf("a CredentialLifetime=600 credential expires in %v", d)
	}
	for _, v := range []string{"299", "3601", "0", "ten", "-5"} {
		_, err := lakebase.ParseDSN(e.OAuthClientDSN("CredentialLifetime=" + v))
		var ce *lakebase.ConfigError
		if !errors.As(err, &ce) || ce.Property != "CredentialLifetime" || !strings.Contains(err.Error(), "300 to 3600") {
			t.Fatalf("CredentialLifetime=%s: %v", v, err)
		}
	}
}

// A disabled endpoint fails a connect at once with ErrEndpointDisabled, warm (the
// host known, so the connect reaches the front door, which refuses as a waking
// compute would) or cold (the lookup says so): no wake retries.
func TestDisabledEndpoint_FailsAtOnce(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	db, _ := newDB(t, e.OAuthClientDSN("Timeout=120"))
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(0)
	e.SetEndpointDisabled(true)
	e.ResetCounts()
	err := db.Ping()
	if !errors.Is(err, lakebase.ErrEndpointDisabled) || errors.Is(err, lakebase.ErrNotAwake) || !strings.Contains(err.Error(), e.Endpoint) {
		t.Fatalf("a warm connect to a disabled endpoint: %v", err)
	}
	if n := e.Count(lakebasetest.EPNotReady); n != 1 {
		t.Fatalf("%d logins refused: a disabled endpoint was retried as a waking one", n)
	}
	cold, _ := newDB(t, e.OAuthClientDSN("Timeout=120"))
	if err := cold.Ping(); !errors.Is(err, lakebase.ErrEndpointDisabled) {
		t.Fatalf("a cold connect to a disabled endpoint: %v", err)
	}
	e.SetEndpointDisabled(false)
	if err := db.Ping(); err != nil {
		t.Fatalf("enabled again: %v", err)
	}
}

// 429 from the credential or token endpoint: Retry-After is honoured (one request
// a wait, never a tight loop) while Timeout allows; beyond it the error is the
// service's answer, after one request.
func TestThrottled_RetryAfterIsHonouredWithinTimeout(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	e.SetThrottle(lakebasetest.EPCredAutoscaling, 2, time.Second)
	db, _ := newDB(t, e.OAuthClientDSN("Timeout=60"))
	if err := db.Ping(); err != nil {
		t.Fatalf("through two 429s: %v", err)
	}
	if th, n := e.Count(lakebasetest.EPThrottled), e.Count(lakebasetest.EPCredAutoscaling); th != 2 || n != 3 {
		t.Fatalf("%d throttled of %d mint requests, want 2 of 3", th, n)
	}

	e.ResetCounts()
	e.SetThrottle(lakebasetest.EPToken, 3, time.Minute)
	short, _ := newDB(t, e.OAuthClientDSN("Timeout=5"))
	err := short.Ping()
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("a Retry-After beyond Timeout: %v", err)
	}
	if n := e.Count(lakebasetest.EPToken); n != 1 {
		t.Fatalf("%d token requests: a Retry-After of a minute within Timeout=5 allows one", n)
	}
}
