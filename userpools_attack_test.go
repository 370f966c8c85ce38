package lakebase_test

// What an attacker controls on the per-user path: the token a request carries
// (forged, replayed after its revocation, or holding header-ending characters),
// when requests arrive (racing evictions and Close), and how slowly the workspace
// answers. These tests forge each and check that nobody's session or identity
// moves to where it should not, and that the pools keep their bounds.

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// A person's newest token revoked after it was presented (stolen, say), and its
// replays, never fail the person's requests with a valid token: a refused token
// is dropped and the pool mints with the one before it.
func TestUserPools_ARevokedNewestTokenNeitherFailsThePersonNorComesBack(t *testing.T) {
	srv := lakebasetest.Start(t)
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{})
	defer u.Close()
	ctx := context.Background()
	asBob := func(tok string) error {
		db, err := u.DB(ctx, tok)
		if err != nil {
			return err
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer func() {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // the next request logs in anew
			conn.Close()
		}()
		var who string
		if err := conn.QueryRowContext(ctx, `SELECT current_user`).Scan(&who); err != nil {
			return err
		}
		if who != "bob@example.com" {
			return fmt.Errorf("ran as %s", who)
		}
		return nil
	}
	valid, err := srv.UserToken("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	tie, err := srv.UserToken("bob@example.com") // most likely of the same second
	if err != nil {
		t.Fatal(err)
	}
	if err := asBob(valid); err != nil {
		t.Fatal(err)
	}
	sec := time.Now().Unix()
	waitFor(t, "the next second", func() bool { return time.Now().Unix() > sec })
	newest, err := srv.UserToken("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := asBob(newest); err != nil { // the pool now mints with it
		t.Fatal(err)
	}
	if err := asBob(tie); err != nil { // remembered as Bob's
		t.Fatal(err)
	}
	srv.Revoke(newest)
	srv.Revoke(tie)
	srv.RevokeAllCredentials() // the next login mints again
	for i := 0; i < 3; i++ {
		if err := asBob(valid); err != nil {
			t.Fatalf("bob's request %d with his valid token after his newest was revoked: %v", i, err)
		}
	}
	// Replays of the revoked tokens (accepted or refused: the workspace's answer
	// about a token already seen is remembered until it expires) never fail Bob.
	for _, tok := range []string{newest, tie} {
		if _, err := u.DB(ctx, tok); err != nil && (!errors.Is(err, lakebase.ErrUserToken) || strings.Contains(err.Error(), tok)) {
			t.Fatalf("a replayed revoked token: %v", err)
		}
	}
	srv.RevokeAllCredentials()
	if err := asBob(valid); err != nil {
		t.Fatalf("bob after the replays: %v", err)
	}
}

// A token holding characters no OAuth token has (a header injection attempt) is
// refused as a token, before any request.
func TestUserPools_ATokenWithHeaderCharactersIsRefusedAsAToken(t *testing.T) {
	srv := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{})
	defer u.Close()
	tok, err := srv.UserToken("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Count(lakebasetest.EPSCIMMe)
	for _, bad := range []string{tok + "\r\nX-Forwarded-Email: bob@example.com", "a b", "tok\x00en", "tök"} {
		_, err := u.DB(context.Background(), bad)
		if !errors.Is(err, lakebase.ErrUserToken) || lakebase.Retryable(err) {
			t.Fatalf("%q: %v (retryable %v), want ErrUserToken, not retryable", bad, err, lakebase.Retryable(err))
		}
		if strings.Contains(err.Error(), tok) {
			t.Fatal("the error holds the token")
		}
	}
	if n := srv.Count(lakebasetest.EPSCIMMe) - before; n != 0 {
		t.Fatalf("%d SCIM Me requests for tokens that are not tokens", n)
	}
}

// DB ends with the request's context while the workspace is slow to say who a
// token is.
func TestUserPools_DBEndsWithTheRequestsContext(t *testing.T) {
	srv := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{})
	defer u.Close()
	tok, err := srv.UserToken("slow@example.com")
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLatency(lakebasetest.EPSCIMMe, time.Hour)
	defer srv.SetLatency(lakebasetest.EPSCIMMe, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := u.DB(ctx, tok)
		done <- err
	}()
	waitFor(t, "the SCIM Me request", func() bool { return srv.Count(lakebasetest.EPSCIMMe) > 0 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("DB after its context ended: %v, want context.Canceled", err)
	}
}

// Events of a person's pool reach the base's observers without the person's name.
func TestUserPools_EventsNameNobody(t *testing.T) {
	srv := lakebasetest.Start(t)
	var mu sync.Mutex
	var named []string
	var logins atomic.Int64
	base := baseConnector(t, srv, lakebase.WithObserver(lakebase.ObserverFunc(func(_ context.Context, e lakebase.Event) {
		if e.Kind == lakebase.EventLogin {
			logins.Add(1)
		}
		if strings.Contains(e.User, "@") {
			mu.Lock()
			named = append(named, string(e.Kind)+" "+e.User)
			mu.Unlock()
		}
	})))
	u := lakebase.NewUserPools(base, lakebase.UserPoolOptions{})
	defer u.Close()
	tok, err := srv.UserToken("carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	db, err := u.DB(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	if logins.Load() == 0 {
		t.Fatal("the person's login sent no event to the base's observers")
	}
	if len(named) > 0 {
		t.Fatalf("events name the person: %v", named)
	}
}

// A pool whose session a request still holds is not closed as idle.
func TestUserPools_APoolInUseIsNotIdle(t *testing.T) {
	srv := lakebasetest.Start(t)
	var idle atomic.Int64
	base := baseConnector(t, srv, lakebase.WithObserver(lakebase.ObserverFunc(func(_ context.Context, e lakebase.Event) {
		if e.Kind == lakebase.EventUserPoolEvict && e.Cause == "idle" {
			idle.Add(1)
		}
	})))
	u := lakebase.NewUserPools(base, lakebase.UserPoolOptions{IdleTimeout: 50 * time.Millisecond})
	defer u.Close()
	ctx := context.Background()
	busyTok, err := srv.UserToken("busy@example.com")
	if err != nil {
		t.Fatal(err)
	}
	idleTok, err := srv.UserToken("idle@example.com")
	if err != nil {
		t.Fatal(err)
	}
	busy, err := u.DB(ctx, busyTok) // first: idle as long as the other, or longer
	if err != nil {
		t.Fatal(err)
	}
	conn, err := busy.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := u.DB(ctx, idleTok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle person's pool to close", func() bool { return idle.Load() == 1 })
	if n := u.Len(); n != 1 {
		t.Fatalf("%d pools open, want the busy one", n)
	}
	var one int
	if err := conn.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("the request's session after the sweep: %v", err)
	}
	if err := busy.PingContext(ctx); err != nil {
		t.Fatalf("the busy person's pool after the sweep: %v", err)
	}
}

// Pool never answers (nil, nil), however evictions race it; Close returns only
// when every evicted pool is closed.
func TestUserPools_PoolRacingEvictionsAndClose(t *testing.T) {
	srv := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{MaxUsers: 1})
	ctx := context.Background()
	toks := make([]string, 4)
	for i := range toks {
		var err error
		if toks[i], err = srv.UserToken(fmt.Sprintf("racer%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var nils atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				p, err := u.Pool(ctx, toks[(g+i)%len(toks)])
				if err == nil && p == nil {
					nils.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := nils.Load(); n > 0 {
		t.Fatalf("Pool answered (nil, nil) %d times", n)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if st := string(buf[:runtime.Stack(buf, true)]); strings.Contains(st, "(*userPool).close") {
		t.Fatalf("a pool is still being closed after Close returned:\n%s", st)
	}
}
