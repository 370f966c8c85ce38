package lakebase_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lakebase-go/lakebase"
)

// SessionRole: every session acts as the granted role (current_user), logged in as
// the identity (session_user), through database/sql with its pool resets and
// through pgxpool.
func TestSessionRole_EverySessionActsAsTheRole(t *testing.T) {
	needServers(t)
	sp := emu.ServicePrincipal.ClientID
	if err := emu.Exec(fmt.Sprintf(`DO $$ BEGIN CREATE ROLE "app writers" NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
		GRANT "app writers" TO %q; GRANT CREATE ON SCHEMA public TO "app writers"`, sp)); err != nil {
		t.Fatal(err)
	}
	db, _ := newDB(t, emu.OAuthClientDSN("SessionRole='app writers'"))
	db.SetMaxOpenConns(3)
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for range 60 { // sessions are reused and reset by database/sql between uses
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cur, sess string
			if err := db.QueryRow("SELECT current_user, session_user").Scan(&cur, &sess); err != nil {
				errs <- err
				return
			}
			if cur != "app writers" || sess != sp {
				errs <- fmt.Errorf("current_user %q, session_user %q", cur, sess)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Objects made in the session belong to the role.
	if _, err := db.Exec("DROP TABLE IF EXISTS role_owned; CREATE TABLE role_owned (a int)"); err != nil {
		t.Fatal(err)
	}
	var owner string
	db.QueryRow("SELECT tableowner FROM pg_tables WHERE tablename = 'role_owned'").Scan(&owner)
	if owner != "app writers" {
		t.Fatalf("the table belongs to %q", owner)
	}

	c, _ := lakebase.NewConnector(emu.OAuthClientDSN("SessionRole='app writers'"))
	defer c.Close()
	pool := poolOf(t, c)
	var cur string
	if err := pool.QueryRow(context.Background(), "SELECT current_user").Scan(&cur); err != nil || cur != "app writers" {
		t.Fatalf("pgxpool: %q %v", cur, err)
	}
}

// A role the identity was not granted fails the connect with a clear error.
func TestSessionRole_NotGrantedIsAClearError(t *testing.T) {
	needServers(t)
	if err := emu.Exec(`DO $$ BEGIN CREATE ROLE not_granted NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"not_granted", "no_such_role"} {
		db, _ := newDB(t, emu.OAuthClientDSN("SessionRole="+role))
		err := db.Ping()
		var ce *lakebase.ConfigError
		if !errors.As(err, &ce) || ce.Property != "SessionRole" || !strings.Contains(err.Error(), "GRANT") {
			t.Fatalf("%s: %v", role, err)
		}
	}
}

// SessionRole is the session's default role: code that runs RESET ROLE, RESET ALL
// or SET SESSION AUTHORIZATION DEFAULT leaves the session acting as the role, so the next user of the pooled session never gets the identity's rights
// (database/sql and pgxpool alike).
func TestSessionRole_ResetsReturnToTheRole(t *testing.T) {
	needServers(t)
	sp := emu.ServicePrincipal.ClientID
	if err := emu.Exec(fmt.Sprintf(`DO $$ BEGIN CREATE ROLE "app readers" NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
		GRANT "app readers" TO %q`, sp)); err != nil {
		t.Fatal(err)
	}
	dsn := emu.OAuthClientDSN("SessionRole='app readers'")
	resets := []string{"RESET ROLE", "RESET ALL", "SET SESSION AUTHORIZATION DEFAULT"}
	db, _ := newDB(t, dsn)
	db.SetMaxOpenConns(1) // one session, reused after each reset
	for _, reset := range resets {
		if _, err := db.Exec(reset); err != nil {
			t.Fatalf("%s: %v", reset, err)
		}
		var cur string
		if err := db.QueryRow("SELECT current_user").Scan(&cur); err != nil || cur != "app readers" {
			t.Fatalf("after %s the next query runs as %q (%v)", reset, cur, err)
		}
	}
	c, _ := lakebase.NewConnector(dsn)
	defer c.Close()
	pool := poolOf(t, c)
	pool.Config().MaxConns = 1
	ctx := context.Background()
	for _, reset := range resets {
		if _, err := pool.Exec(ctx, reset); err != nil {
			t.Fatalf("pgxpool %s: %v", reset, err)
		}
		var cur string
		if err := pool.QueryRow(ctx, "SELECT current_user").Scan(&cur); err != nil || cur != "app readers" {
			t.Fatalf("pgxpool: after %s the next query runs as %q (%v)", reset, cur, err)
		}
	}
}
