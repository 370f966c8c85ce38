package lakebase_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// rlsServer is an emulator with a table every person may use, under a row-level
// security policy that shows each person only their own rows.
func rlsServer(t *testing.T) *lakebasetest.Server {
	t.Helper()
	srv := lakebasetest.Start(t)
	for _, q := range []string{
		`CREATE TABLE notes (owner text NOT NULL DEFAULT current_user, body text NOT NULL)`,
		`ALTER TABLE notes ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY own_notes ON notes USING (owner = current_user) WITH CHECK (owner = current_user)`,
		`GRANT SELECT, INSERT ON notes TO PUBLIC`,
	} {
		if err := srv.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// baseConnector names the emulator's database; its own login (the service
// principal) is never used by the per-user pools.
func baseConnector(t *testing.T, srv *lakebasetest.Server, opts ...lakebase.Option) *lakebase.Connector {
	t.Helper()
	c, err := lakebase.NewConnector(srv.OAuthClientDSN(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func person(i int) string { return fmt.Sprintf("person%02d@example.com", i) }

// 50 people × 10 concurrent requests under a policy on current_user: every person
// sees exactly their own rows, every time; one mint per person.
func TestUserPools_EachPersonSeesOnlyTheirOwnRows(t *testing.T) {
	srv := rlsServer(t)
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{})
	defer u.Close()
	ctx := context.Background()
	const people, requests = 50, 10
	tokens := make([]string, people)
	for i := range tokens {
		tok, err := srv.UserToken(person(i))
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok
	}
	srv.ResetCounts()
	for i, tok := range tokens {
		db, err := u.DB(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n <= i%3; n++ {
			if _, err := db.ExecContext(ctx, `INSERT INTO notes (body) VALUES ($1)`, fmt.Sprintf("note %d of %s", n, person(i))); err != nil {
				t.Fatalf("%s: %v", person(i), err)
			}
		}
	}
	var wg sync.WaitGroup
	var crossed, failed atomic.Int64
	for i, tok := range tokens {
		for r := 0; r < requests; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := u.DB(ctx, tok)
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				rows, err := db.QueryContext(ctx, `SELECT owner, current_user FROM notes`)
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				defer rows.Close()
				n := 0
				for rows.Next() {
					var owner, who string
					if err := rows.Scan(&owner, &who); err != nil {
						t.Error(err)
						return
					}
					if owner != person(i) || who != person(i) {
						crossed.Add(1)
					}
					n++
				}
				if err := rows.Err(); err != nil {
					t.Error(err)
				}
				if n != i%3+1 {
					t.Errorf("%s saw %d rows, want %d", person(i), n, i%3+1)
				}
			}()
		}
	}
	wg.Wait()
	if crossed.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("%d rows of another person seen, %d requests failed", crossed.Load(), failed.Load())
	}
	if got := u.Len(); got != people {
		t.Fatalf("Len() = %d, want %d", got, people)
	}
	if mints := srv.Count(lakebasetest.EPCredAutoscaling); mints != people {
		t.Fatalf("%d credential mints for %d people, want one each", mints, people)
	}
	if me := srv.Count(lakebasetest.EPSCIMMe); me != people {
		t.Fatalf("%d SCIM Me calls for %d tokens, want one per token", me, people)
	}
}

// The key is who the token proves: headers naming someone else change nothing.
func TestUserPools_TheTokenNotTheHeaderNamesThePerson(t *testing.T) {
	srv := rlsServer(t)
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{})
	defer u.Close()
	alice, err := srv.UserToken("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := srv.UserToken("mallory@example.com")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db, err := u.DB(r.Context(), lakebase.ForwardedToken(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var who string
		if err := db.QueryRowContext(r.Context(), `SELECT current_user`).Scan(&who); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, who)
	})
	ask := func(token, user string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Forwarded-Access-Token", token)
		r.Header.Set("X-Forwarded-User", user)
		r.Header.Set("X-Forwarded-Email", user)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Body.String()
	}
	if got := ask(alice, "alice@example.com"); got != "alice@example.com" {
		t.Fatalf("alice's request ran as %q", got)
	}
	if got := ask(mallory, "alice@example.com"); got != "mallory@example.com" {
		t.Fatalf("mallory's token with alice's headers ran as %q, want mallory", got)
	}
	if got := u.Len(); got != 2 {
		t.Fatalf("Len() = %d, want 2", got)
	}
}

// A person's token replaced mid-run, the old one revoked: their next requests
// work with the new token; a refused or expired token fails its own call only.
func TestUserPools_TheFreshestTokenWinsAndARefusedOneFailsAlone(t *testing.T) {
	srv := rlsServer(t)
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{})
	defer u.Close()
	ctx := context.Background()
	query := func(tok string) error {
		db, err := u.DB(ctx, tok)
		if err != nil {
			return err
		}
		// A session of its own each time, so every request logs in anew.
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer func() {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // discarded: the next request logs in anew
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
	old, err := srv.UserToken("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := query(old); err != nil {
		t.Fatal(err)
	}
	fresh, err := srv.UserToken("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := query(fresh); err != nil {
		t.Fatal(err)
	}
	srv.Revoke(old)
	srv.RevokeAllCredentials() // the next login must mint again, with the fresh token
	for i := 0; i < 3; i++ {
		if err := query(fresh); err != nil {
			t.Fatalf("request %d after the old token was revoked: %v", i, err)
		}
	}
	// A token the workspace refuses fails its own call, and Bob's pool goes on.
	stranger, err := srv.UserToken("eve@example.com")
	if err != nil {
		t.Fatal(err)
	}
	srv.Revoke(stranger)
	if _, err := u.DB(ctx, stranger); !errors.Is(err, lakebase.ErrUserToken) {
		t.Fatalf("a revoked token: %v, want ErrUserToken", err)
	}
	if _, err := u.DB(ctx, "not-a-token"); !errors.Is(err, lakebase.ErrUserToken) {
		t.Fatalf("garbage: %v, want ErrUserToken", err)
	}
	if _, err := u.DB(ctx, ""); !errors.Is(err, lakebase.ErrUserToken) {
		t.Fatalf("no token: %v, want ErrUserToken", err)
	}
	if err := query(fresh); err != nil {
		t.Fatalf("bob after the refused tokens: %v", err)
	}
}

// 1,000 people with MaxUsers=100: never more than 100 pools; Close leaves nothing
// running. (The workspace side only: opening a pool logs nobody in.)
func TestUserPools_AreBoundedAndCloseLeavesNothingRunning(t *testing.T) {
	srv := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	var opened, evicted atomic.Int64
	base := baseConnector(t, srv, lakebase.WithObserver(lakebase.ObserverFunc(func(_ context.Context, e lakebase.Event) {
		switch e.Kind {
		case lakebase.EventUserPoolOpen:
			opened.Add(1)
		case lakebase.EventUserPoolEvict:
			evicted.Add(1)
		default:
			return
		}
		if e.User != "" || e.Database != "" {
			t.Errorf("a pool event names someone: %+v", e)
		}
	})))
	// Other tests' connectors and *sql.DB left open are not this test's.
	openersBefore, driverBefore := openers(), driverGoroutines()
	u := lakebase.NewUserPools(base, lakebase.UserPoolOptions{MaxUsers: 100, IdleTimeout: time.Hour})
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		tok, err := srv.UserToken(fmt.Sprintf("p%04d@example.com", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.DB(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if n := u.Len(); n > 100 {
			t.Fatalf("%d pools open after %d people, want at most 100", n, i+1)
		}
	}
	if opened.Load() != 1000 || evicted.Load() != 900 {
		t.Fatalf("observer saw %d opens and %d evictions, want 1000 and 900", opened.Load(), evicted.Load())
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if u.Len() != 0 {
		t.Fatalf("Len() = %d after Close", u.Len())
	}
	if _, err := u.DB(ctx, "any"); err == nil {
		t.Fatal("DB after Close worked")
	}
	// Close returned: every goroutine of the pools (sweep, pool closes, pgx pools'
	// health checks) is gone, and database/sql's openers, which sql.DB.Close
	// cancels without waiting for, end. (The HTTP transport's connection goroutines
	// are the base connector's and the transport's.)
	if n := driverGoroutines(); n > driverBefore {
		t.Fatalf("%d goroutines of the driver outlive Close (%d before the pools):\n%s", n, driverBefore, poolGoroutines())
	}
	waitFor(t, "database/sql's openers to end", func() bool { return openers() <= openersBefore })
}

// driverGoroutines counts goroutines running the driver's code or pgxpool's.
func driverGoroutines() int {
	n := 0
	for _, g := range strings.Split(poolGoroutines(), "\n\n") {
		if strings.Contains(g, "lakebase-go/lakebase.") || strings.Contains(g, "pgxpool.") {
			n++
		}
	}
	return n
}

// openers counts database/sql's connection openers running (one per open *sql.DB).
func openers() int {
	buf := make([]byte, 8<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "database/sql.(*DB).connectionOpener(")
}

// poolGoroutines returns the stacks of goroutines running the driver's or the
// pools' code (not this test's).
func poolGoroutines() string {
	buf := make([]byte, 8<<20)
	var left []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "lakebase_test.") {
			continue
		}
		for _, mark := range []string{"lakebase-go/lakebase.", "pgxpool.", "database/sql.(*DB).connectionOpener"} {
			if strings.Contains(g, mark) {
				left = append(left, g)
				break
			}
		}
	}
	return strings.Join(left, "\n\n")
}

func TestUserPools_IdlePoolsClose(t *testing.T) {
	srv := lakebasetest.Start(t)
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{IdleTimeout: 50 * time.Millisecond})
	defer u.Close()
	tok, err := srv.UserToken("idle@example.com")
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
	waitFor(t, "the idle pool to close", func() bool { return u.Len() == 0 })
	if err := db.Ping(); err == nil {
		t.Fatal("the idle pool's *sql.DB still works after it was closed")
	}
	// The person comes back: a new pool.
	if db, err = u.DB(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
}

func TestUserPools_PgxPoolLogsInAsThePerson(t *testing.T) {
	srv := rlsServer(t)
	u := lakebase.NewUserPools(baseConnector(t, srv), lakebase.UserPoolOptions{SessionsPerUser: 2})
	defer u.Close()
	tok, err := srv.UserToken("carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := u.Pool(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	var who string
	if err := pool.QueryRow(context.Background(), `SELECT current_user`).Scan(&who); err != nil {
		t.Fatal(err)
	}
	if who != "carol@example.com" || pool.Config().MaxConns != 2 {
		t.Fatalf("pgx pool as %q with %d sessions", who, pool.Config().MaxConns)
	}
}

// waitFor polls cond until it holds; the bound is a backstop for a hang, far above
// what a loaded machine needs.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
