package lakebase_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// recorder keeps the events an observer is told.
type recorder struct {
	mu     sync.Mutex
	events []lakebase.Event
}

func (r *recorder) OnEvent(_ context.Context, e lakebase.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) take() []lakebase.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func find(evs []lakebase.Event, kind lakebase.EventKind, cause string) *lakebase.Event {
	for i := range evs {
		if evs[i].Kind == kind && (cause == "" || evs[i].Cause == cause) {
			return &evs[i]
		}
	}
	return nil
}

// The observer hook through real logins: a cold login tells of the workspace
// token, the credential mint and the login; a revoked credential of the 28P01
// retry; a suspended endpoint of the wake retry and the wait. No event holds a
// secret.
func TestObserver_TellsOfTokensMintsLoginsRetriesAndWakes(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{ScaleToZero: time.Hour, WakeDelay: time.Second})
	rec := &recorder{}
	db, _ := newDB(t, e.OAuthClientDSN("Timeout=120"), lakebase.WithObserver(rec))
	db.SetMaxIdleConns(0)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	cold := rec.take()
	tok, mint, login := find(cold, lakebase.EventWorkspaceToken, ""), find(cold, lakebase.EventCredentialMint, ""), find(cold, lakebase.EventLogin, "")
	if tok == nil || tok.Outcome != lakebase.OutcomeOK || tok.Scheme != lakebase.AuthOAuthClient || tok.Expiry.IsZero() {
		t.Fatalf("workspace token event: %+v", tok)
	}
	if mint == nil || mint.API != "autoscaling" || mint.Database != e.Endpoint || mint.Expiry.Before(time.Now()) || mint.Duration <= 0 {
		t.Fatalf("credential mint event: %+v", mint)
	}
	if login == nil || login.Outcome != lakebase.OutcomeOK || login.User != e.ServicePrincipal.ClientID || login.Database != e.Endpoint {
		t.Fatalf("login event: %+v", login)
	}

	e.RevokeAllCredentials()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	healed := rec.take()
	if r := find(healed, lakebase.EventRetry, "28P01"); r == nil {
		t.Fatalf("no 28P01 retry in %+v", healed)
	}
	if l := find(healed, lakebase.EventLogin, ""); l == nil || l.Outcome != lakebase.OutcomeError || l.ErrorCode != "28P01" {
		t.Fatalf("the refused login: %+v", l)
	}

	e.Suspend()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	woke := rec.take()
	if r := find(woke, lakebase.EventRetry, "wake"); r == nil {
		t.Fatalf("no wake retry in %+v", woke)
	}
	if w := find(woke, lakebase.EventWakeWait, ""); w == nil || w.Outcome != lakebase.OutcomeOK || w.Duration <= 0 {
		t.Fatalf("the wake wait: %+v", w)
	}

	all := fmt.Sprintf("%+v %+v %+v", cold, healed, woke)
	for _, s := range e.IssuedSecrets() {
		if strings.Contains(all, s) {
			t.Fatal("an event holds a secret")
		}
	}
	if strings.Contains(all, e.ServicePrincipal.ClientSecret) {
		t.Fatal("an event holds the client secret")
	}
}
