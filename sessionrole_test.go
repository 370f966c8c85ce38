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
