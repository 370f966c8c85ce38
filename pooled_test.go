package lakebase_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// pooledEmulator starts an emulator whose endpoint has a pooled host: a real
// PgBouncer in transaction mode with 10 server sessions per user and database.
func pooledEmulator(t *testing.T, opts lakebasetest.Options) *lakebasetest.Server {
	t.Helper()
	testenv.NeedPgBouncer(t)
	opts.Pooler = true
	if opts.PoolerPoolSize == 0 {
		opts.PoolerPoolSize = 10
	}
	e := lakebasetest.Start(t, opts)
	if e.PooledPort == 0 || !strings.HasSuffix(e.PooledHost, ":"+strconv.Itoa(e.PooledPort)) {
		t.Fatalf("the pooled host is %q (port %d)", e.PooledHost, e.PooledPort)
	}
	return e
}

// sampleSessions records the most PostgreSQL sessions role has at once until stop
// is closed.
func sampleSessions(t *testing.T, e *lakebasetest.Server, role string, stop <-chan struct{}) func() int {
	var most atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := e.Sessions(role)
			if err != nil {
				t.Errorf("counting sessions: %v", err)
				return
			}
			if int64(n) > most.Load() {
				most.Store(int64(n))
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() int { <-done; return int(most.Load()) }
}

// concurrently runs fn(0) ... fn(n-1) at once and returns the errors they returned.
func concurrently(n int, fn func(i int) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// clientWork is what each client does through the pooler: a query with arguments,
// a transaction that writes and reads back, and a Prepare'd statement used twice.
func clientWork(ctx context.Context, c *sql.Conn, id int) error {
	var sum int
	if err := c.QueryRowContext(ctx, "SELECT $1::int + $2::int", id, 1000).Scan(&sum); err != nil {
		return fmt.Errorf("query with arguments: %w", err)
	}
	if sum != id+1000 {
		return fmt.Errorf("query with arguments: %d", sum)
	}
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO pooled_work (client, note) VALUES ($1, $2)", id, "client "+strconv.Itoa(id)); err != nil {
		tx.Rollback()
		return fmt.Errorf("insert: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM pooled_work WHERE client = $1", id).Scan(&n); err != nil || n == 0 {
		tx.Rollback()
		return fmt.Errorf("read back in the transaction: %d, %v", n, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	st, err := c.PrepareContext(ctx, "SELECT note FROM pooled_work WHERE client = $1 LIMIT 1")
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer st.Close()
	for range 2 {
		var note string
		if err := st.QueryRowContext(ctx, id).Scan(&note); err != nil || note != "client "+strconv.Itoa(id) {
			return fmt.Errorf("prepared statement: %q, %v", note, err)
		}
	}
	return nil
}

// 200 clients at once through the driver and the real PgBouncer share at most 10
// server sessions (as pg_stat_activity shows), with queries with arguments,
// transactions and Prepare'd statements, in the default exec mode and each other
// mode that works through transaction pooling.
func TestPooled_TwoHundredClientsShareTenServerSessions(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	role := e.ServicePrincipal.ClientID
	if err := e.Exec(`CREATE TABLE pooled_work (client int, note text); GRANT ALL ON pooled_work TO "` + role + `"`); err != nil {
		t.Fatal(err)
	}
	const clients = 200
	for _, mode := range []string{"", "cache_describe", "exec", "simple_protocol"} {
		t.Run("mode="+mode, func(t *testing.T) {
			extra := []string{"Pooled=true", "Timeout=180"}
			if mode != "" {
				extra = append(extra, "QueryExecMode="+mode)
			}
			db, _ := newDB(t, e.OAuthClientDSN(extra...))
			db.SetMaxOpenConns(clients)
			db.SetMaxIdleConns(clients)
			ctx := context.Background()
			before := e.Count(lakebasetest.EPPooledLogin)

			// Every client connects first, so all 200 are open at once.
			conns := make([]*sql.Conn, clients)
			errs := concurrently(clients, func(i int) error {
				c, err := db.Conn(ctx)
				if err == nil {
					err = c.PingContext(ctx)
				}
				conns[i] = c
				if err != nil {
					return fmt.Errorf("client %d connecting: %w", i, err)
				}
				return nil
			})
			defer func() {
				for _, c := range conns {
					if c != nil {
						c.Close()
					}
				}
			}()
			for _, err := range errs {
				t.Fatal(err)
			}
			if got := e.Count(lakebasetest.EPPooledLogin) - before; got != clients {
				t.Fatalf("%d client logins reached the pooler, want %d", got, clients)
			}

			stop := make(chan struct{})
			most := sampleSessions(t, e, role, stop)
			errs = concurrently(clients, func(i int) error {
				for range 3 {
					if err := clientWork(ctx, conns[i], i); err != nil {
						return fmt.Errorf("client %d: %w", i, err)
					}
				}
				return nil
			})
			close(stop)
			for _, err := range errs {
				t.Error(err)
			}
			m := most()
			t.Logf("%d clients, at most %d server sessions", clients, m)
			if m < 1 || m > 10 {
				t.Fatalf("the pooler used %d server sessions at once for %d clients, want 1 to 10", m, clients)
			}
		})
	}
}

// The pgxpool helper through the pooled host: 200 connections at once, the same
// work, at most 10 server sessions.
func TestPooled_PgxpoolSharesTenServerSessions(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	role := e.ServicePrincipal.ClientID
	c, err := lakebase.NewConnector(e.OAuthClientDSN("Pooled=true", "Timeout=180"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.PoolConfig()
	if err != nil {
		t.Fatal(err)
	}
	if pc.ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeCacheDescribe {
		t.Fatalf("the pooled default exec mode is %v, want cache describe", pc.ConnConfig.DefaultQueryExecMode)
	}
	const clients = 200
	pc.MaxConns = clients
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	held := make([]*pgxpool.Conn, clients)
	errs := concurrently(clients, func(i int) (err error) {
		held[i], err = pool.Acquire(ctx)
		return err
	})
	defer func() {
		for _, pcn := range held {
			if pcn != nil {
				pcn.Release()
			}
		}
	}()
	for _, err := range errs {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	most := sampleSessions(t, e, role, stop)
	errs = concurrently(clients, func(i int) error {
		for range 3 {
			var sum int
			if err := held[i].QueryRow(ctx, "SELECT $1::int + $2::int", i, 7).Scan(&sum); err != nil || sum != i+7 {
				return fmt.Errorf("conn %d: %d, %v", i, sum, err)
			}
			err := pgx.BeginFunc(ctx, held[i], func(tx pgx.Tx) error {
				var one int
				return tx.QueryRow(ctx, "SELECT $1::int", 1).Scan(&one)
			})
			if err != nil {
				return fmt.Errorf("conn %d transaction: %w", i, err)
			}
		}
		return nil
	})
	close(stop)
	for _, err := range errs {
		t.Error(err)
	}
	if m := most(); m < 1 || m > 10 {
		t.Fatalf("%d server sessions at once for %d connections, want 1 to 10", m, clients)
	}
}

// holdServer starts a transaction on another client so the pooler must give the
// next transaction of the first client another server session; it returns the
// rollback.
func holdServer(t *testing.T, db *sql.DB) func() {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	return func() { tx.Rollback() }
}

// Why the defaults are what they are: a statement prepared on one server session
// is missing on the next. With the pooled defaults the second use goes through; with
// QueryExecMode=cache_statement (kept, as the user asked) it fails as the README
// says, "prepared statement ... does not exist".
func TestPooled_DefaultsSurviveAChangeOfServerSessionAndCacheStatementDoesNot(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	for _, tc := range []struct {
		mode   string
		broken bool
	}{{"", false}, {"cache_statement", true}} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			extra := []string{"Pooled=true"}
			if tc.mode != "" {
				extra = append(extra, "QueryExecMode="+tc.mode)
			}
			db, _ := newDB(t, e.OAuthClientDSN(extra...))
			ctx := context.Background()
			a, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			var pid1, pid2 int
			if err := a.QueryRowContext(ctx, "SELECT pg_backend_pid() + $1::int", 0).Scan(&pid1); err != nil {
				t.Fatal(err)
			}
			st, err := a.PrepareContext(ctx, "SELECT pg_backend_pid() + $1::int")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			release := holdServer(t, db) // the other client now has a's server session
			defer release()
			err = a.QueryRowContext(ctx, "SELECT pg_backend_pid() + $1::int", 0).Scan(&pid2)
			serr := st.QueryRowContext(ctx, 0).Scan(new(int))
			if tc.broken {
				if err == nil && serr == nil {
					t.Fatalf("cache_statement worked across server sessions (%d, %d)", pid1, pid2)
				}
				for _, err := range []error{err, serr} {
					if err != nil && !strings.Contains(err.Error(), "does not exist") {
						t.Fatalf("cache_statement through the pooler: %v", err)
					}
				}
				return
			}
			if err != nil || serr != nil {
				t.Fatalf("after the change of server session: %v; the Prepare'd statement: %v", err, serr)
			}
			if pid1 == pid2 {
				t.Fatalf("the query ran on the same server session (%d): the test proves nothing", pid1)
			}
		})
	}
}

// TimeZone works through the pooler (PgBouncer keeps it as a startup parameter for
// each client); SessionRole, which it refuses, is a ConfigError naming what to do.
func TestPooled_TimeZoneIsKeptAndSessionRoleIsRefused(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	ctx := context.Background()
	zones := []string{"Asia/Tokyo", "America/Lima", "Europe/Paris"}
	var wg sync.WaitGroup
	for _, z := range zones {
		db, _ := newDB(t, e.OAuthClientDSN("Pooled=true", "TimeZone="+z))
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					var got string
					if err := db.QueryRowContext(ctx, "SELECT current_setting('TimeZone')").Scan(&got); err != nil || got != z {
						t.Errorf("TimeZone=%s through the pooler: %q, %v", z, got, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()

	_, err := lakebase.NewConnector(e.OAuthClientDSN("Pooled=true", "SessionRole=app_readers"))
	var ce *lakebase.ConfigError
	if !errors.As(err, &ce) || ce.Property != "SessionRole" {
		t.Fatalf("SessionRole with Pooled=true: %v", err)
	}
	for _, want := range []string{"Pooled=true", "Pooled=false", "SET LOCAL ROLE"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("the error does not say %q: %v", want, err)
		}
	}
	_, err = lakebase.NewConnector(e.OAuthPKCEDSN("Pooled=true"))
	if !errors.As(err, &ce) || ce.Property != "Pooled" || !strings.Contains(err.Error(), "Provisioned") {
		t.Fatalf("Pooled=true with a Provisioned instance: %v", err)
	}
}

// A session-level advisory lock through the pooler holds nowhere: two clients both
// "take" it (what makes two migrations run at once). Through database/sql on the
// pooled host it is refused before anything is sent; the transaction-level lock and
// the direct host still work.
func TestPooled_SessionAdvisoryLocksAreRefused(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	ctx := context.Background()

	// The hazard, with plain pgx through the pooled host.
	c, err := lakebase.NewConnector(e.OAuthClientDSN("Pooled=true"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []bool
	for range 2 {
		li, err := c.Login(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=verify-full sslrootcert=%s default_query_exec_mode=exec",
			li.Host, li.Port, li.User, li.Password, e.Database, e.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(ctx)
		var ok bool
		if err := pc.QueryRow(ctx, "SELECT pg_try_advisory_lock(42)").Scan(&ok); err != nil {
			t.Fatal(err)
		}
		got = append(got, ok)
	}
	if !got[0] || !got[1] {
		t.Fatalf("two pooled clients taking one session lock: %v (the pooler's server session is shared, so both get it)", got)
	}

	db, _ := newDB(t, e.OAuthClientDSN("Pooled=true"))
	for _, q := range []string{"SELECT pg_advisory_lock(7)", "select PG_TRY_ADVISORY_LOCK(7)", "SELECT pg_advisory_lock_shared($1)"} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, 7)
		}
		_, err := db.ExecContext(ctx, q, args...)
		if !errors.Is(err, lakebase.ErrPooledSessionLock) || !strings.Contains(err.Error(), "Pooled=false") || !strings.Contains(err.Error(), "pg_advisory_xact_lock") {
			t.Fatalf("%s on the pooled host: %v", q, err)
		}
		if _, err := db.PrepareContext(ctx, q); !errors.Is(err, lakebase.ErrPooledSessionLock) {
			t.Fatalf("Prepare(%s) on the pooled host: %v", q, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7)"); err != nil {
		t.Fatalf("the transaction-level lock on the pooled host: %v", err)
	}
	tx.Rollback()
	direct, _ := newDB(t, e.OAuthClientDSN())
	if _, err := direct.ExecContext(ctx, "SELECT pg_advisory_lock(7)"); err != nil {
		t.Fatalf("the session lock on the direct host: %v", err)
	}
}

// The guard on the pooled host looks only at calls: a statement that names an
// advisory lock in a literal, a comment, a quoted alias or a column runs there, and
// a call whose name is spelled with U& escapes (a real call: it takes the lock on
// the direct host) is refused before it is sent.
func TestPooled_AdvisoryGuardRefusesCallsNotNames(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	ctx := context.Background()
	db, _ := newDB(t, e.OAuthClientDSN("Pooled=true"))
	for _, q := range []string{
		"SELECT 'advisory_lock'",
		"SELECT 1 -- then pg_advisory_lock(1)",
		"SELECT 1 /* pg_advisory_lock(1) */",
		`SELECT count(*) AS "Advisory_Locks_Count" FROM (VALUES (1)) AS v(advisory_lock_id)`,
		"SELECT advisory_lock_id FROM (VALUES (1)) AS t(advisory_lock_id)",
		"SELECT $$pg_advisory_lock(1)$$",
		`SELECT E'\' pg_advisory_lock(1)'`,
	} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s on the pooled host: %v", q, err)
		}
		rows.Close()
	}
	const hidden = `SELECT U&"pg_\0061dvisory_lock"(11)`
	if _, err := db.ExecContext(ctx, hidden); !errors.Is(err, lakebase.ErrPooledSessionLock) || !strings.Contains(err.Error(), `"pg_advisory_lock"`) {
		t.Fatalf("%s on the pooled host: %v", hidden, err)
	}
	direct, _ := newDB(t, e.OAuthClientDSN())
	conn, err := direct.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var held int
	if _, err := conn.ExecContext(ctx, hidden); err != nil {
		t.Fatalf("%s on the direct host: %v", hidden, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 11 AND pid = pg_backend_pid()").Scan(&held); err != nil || held != 1 {
		t.Fatalf("the U& call took %d locks (%v): it is not the call the test means", held, err)
	}
}

// A pooler that takes native passwords only refuses the OAuth credential: one
// fresh mint and retry, then an error that says so and names the fixes; a native
// password role through the pooled host (AuthScheme=Password;Pooled=true) works.
func TestPooled_PasswordOnlyPoolerRefusesOAuthAndSaysWhatToDo(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{PoolerAuth: lakebasetest.PoolerAuthPassword})
	db, _ := newDB(t, e.OAuthClientDSN("Pooled=true"))
	before := e.Count(lakebasetest.EPCredAutoscaling)
	err := db.PingContext(context.Background())
	if !errors.Is(err, lakebase.ErrPooledOAuthRefused) || !errors.Is(err, lakebase.ErrLoginRefused) || errors.Is(err, lakebase.ErrNotAwake) {
		t.Fatalf("an OAuth credential at a password-only pooler: %v", err)
	}
	for _, want := range []string{"pooled host refused the OAuth", "Pooled=false", "AuthScheme=Password", "password authentication failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("the error does not say %q: %v", want, err)
		}
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08P01" {
		t.Fatalf("the pooler's own answer is not kept: %v", err)
	}
	if n := e.Count(lakebasetest.EPCredAutoscaling) - before; n != 2 {
		t.Fatalf("%d credential mints for one refused connect, want 2 (one retry)", n)
	}
	for _, s := range e.IssuedSecrets() {
		if strings.Contains(err.Error(), s) {
			t.Fatal("the error holds a secret")
		}
	}

	// The fixes: the direct host, or a native password role through the pooler.
	direct, _ := newDB(t, e.OAuthClientDSN())
	if err := direct.Ping(); err != nil {
		t.Fatalf("the direct host: %v", err)
	}
	if err := e.AddPasswordRole("app_native", "n4tive-Secret"); err != nil {
		t.Fatal(err)
	}
	native, _ := newDB(t, e.PasswordDSN("app_native", "n4tive-Secret", "Pooled=true", "Port="+strconv.Itoa(e.PooledPort)))
	if u := currentUser(t, native); u != "app_native" {
		t.Fatalf("the native role through the pooler is %q", u)
	}
	wrong, _ := newDB(t, e.PasswordDSN("app_native", "wrong-one", "Pooled=true", "Port="+strconv.Itoa(e.PooledPort)))
	if err := wrong.Ping(); !errors.Is(err, lakebase.ErrLoginRefused) || errors.Is(err, lakebase.ErrPooledOAuthRefused) {
		t.Fatalf("a wrong native password at the pooler: %v", err)
	}
}

// The read-only pooled host gives read-only sessions; Project= finds the pooled
// host of the default branch's endpoint; an endpoint without a pooled host is a
// clear error.
func TestPooled_ReadOnlyProjectAndAnEndpointWithoutOne(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	ctx := context.Background()
	ro, _ := newDB(t, e.OAuthClientDSN("Pooled=true", "ReadOnly=true"))
	var on string
	if err := ro.QueryRowContext(ctx, "SHOW transaction_read_only").Scan(&on); err != nil || on != "on" {
		t.Fatalf("the read-only pooled host: %q, %v", on, err)
	}
	before := e.Count(lakebasetest.EPPooledLogin)
	proj, _ := newDB(t, e.OAuthClientDSN("Endpoint=", "Project=lakebase", "Pooled=true"))
	if err := proj.PingContext(ctx); err != nil {
		t.Fatalf("Project=lakebase;Pooled=true: %v", err)
	}
	if e.Count(lakebasetest.EPPooledLogin) == before {
		t.Fatal("Project=lakebase;Pooled=true did not go through the pooler")
	}

	plain := lakebasetest.Start(t)
	db, _ := newDB(t, plain.OAuthClientDSN("Pooled=true"))
	err := db.PingContext(ctx)
	if err == nil || !strings.Contains(err.Error(), "has no pooled host") || !strings.Contains(err.Error(), "Pooled=false") {
		t.Fatalf("an endpoint without a pooled host: %v", err)
	}
}

// Project and Branch through a pooler that refuses OAuth credentials: the refusal
// is the pooler's, not a branch too new to log in to, so the connect mints at most
// twice (one fresh retry, as the README promises) and says what to do, with no
// grace loop of mints and endpoint lookups.
func TestPooled_BranchThroughARefusingPoolerMintsAtMostTwice(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{PoolerAuth: lakebasetest.PoolerAuthPassword})
	parts := strings.Split(e.Endpoint, "/") // projects/<p>/branches/<b>/endpoints/<e>
	db, _ := newDB(t, e.OAuthClientDSN("Endpoint=", "Project="+parts[1], "Branch="+parts[3], "Pooled=true"))
	mints, lookups := e.Count(lakebasetest.EPCredAutoscaling), e.Count(lakebasetest.EPEndpoints)
	err := db.PingContext(context.Background())
	if !errors.Is(err, lakebase.ErrPooledOAuthRefused) || errors.Is(err, lakebase.ErrNotAwake) ||
		!strings.Contains(err.Error(), "Pooled=false") || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("a branch's pooled host refusing the OAuth credential: %v", err)
	}
	if n := e.Count(lakebasetest.EPCredAutoscaling) - mints; n > 2 {
		t.Fatalf("%d credential mints for one refused connect, want at most 2", n)
	}
	if n := e.Count(lakebasetest.EPEndpoints) - lookups; n > 2 {
		t.Fatalf("%d endpoint lookups for one refused connect, want at most 2", n)
	}
}
