package lakebase_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// waitCount waits (polling the emulator's counter, never a fixed sleep) until
// counter reaches n.
func waitCount(t *testing.T, e *lakebasetest.Server, counter string, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for e.Count(counter) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s reached %d, want %d", counter, e.Count(counter), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Sessions the server ended while they sat idle in the pool (Lakebase closes
// sessions idle for 24 hours) are discarded before a statement is sent on them:
// no query fails, through database/sql and pgxpool.
//
// The server ends a session only after it sat idle for idleTimeout, so every
// session it ended has been idle longer than the look's threshold, set below that:
// the test waits for the server to end them all, never for a time to pass.
func TestSessionLimits_IdleSessionsEndedByTheServerAreNeverUsed(t *testing.T) {
	needServers(t)
	const idleTimeout = 500 * time.Millisecond
	e := lakebasetest.Start(t, lakebasetest.Options{IdleSessionTimeout: idleTimeout})
	c, err := lakebase.NewConnector(e.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lakebase.SetLookAfterIdle(c, idleTimeout/5)
	db := lakebase.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(3)
	db.SetMaxIdleConns(3)
	pool := poolOf(t, c)
	ctx := context.Background()

	queryBoth := func(n int) {
		var wg sync.WaitGroup
		var failed atomic.Int64
		var first atomic.Value
		for g := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					var v int
					var err error
					if g%2 == 0 {
						err = db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&v)
					} else {
						err = pool.QueryRow(ctx, "SELECT $1::int", i).Scan(&v)
					}
					if err != nil {
						failed.Add(1)
						first.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d queries failed; first: %v", failed.Load(), first.Load())
		}
	}
	queryBoth(20) // sessions in both pools
	logins := e.Count(lakebasetest.EPLogin)
	waitCount(t, e, lakebasetest.EPSessionEnded+":idle", logins) // every one of them ended by the server
	queryBoth(50)                                                // on sessions the server ended: none may fail
	if e.Count(lakebasetest.EPLogin) <= logins {
		t.Fatal("no new session was opened: the test proves nothing")
	}
}

// A pool whose PoolMaxLifetime is below the server's session lifetime renews its
// sessions before the server ends them: queries for 30 s, none failed.
func TestSessionLimits_PoolMaxLifetimeBelowTheServersHasNoFailedQuery(t *testing.T) {
	needServers(t)
	if testing.Short() {
		t.Skip("a 30 s run")
	}
	e := lakebasetest.Start(t, lakebasetest.Options{MaxSessionLifetime: 5 * time.Second})
	c, err := lakebase.NewConnector(e.OAuthClientDSN("PoolMaxLifetime=2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := lakebase.OpenDB(c)
	defer db.Close()
	pool := poolOf(t, c)
	ctx := context.Background()
	stop := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	var failed, done atomic.Int64
	var first atomic.Value
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				var v int
				var err error
				if g%2 == 0 {
					err = db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&v)
				} else {
					err = pool.QueryRow(ctx, "SELECT $1::int", i).Scan(&v)
				}
				done.Add(1)
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d queries, %d sessions opened, %d ended by the server", done.Load(), e.Count(lakebasetest.EPLogin), e.Count(lakebasetest.EPSessionEnded))
	if failed.Load() > 0 {
		t.Fatalf("%d of %d queries failed; first: %v", failed.Load(), done.Load(), first.Load())
	}
	if e.Count(lakebasetest.EPLogin) < 10 {
		t.Fatal("the sessions were not renewed: the test proves nothing")
	}
}

// A session is looked at on its way out of the pool only when it has been idle
// longer than the threshold: within it, even a session the server ended is left
// alone (its next statement fails, as with plain pgx) and nothing is read from it;
// beyond it, an ended session is found (and pinged, so discarded) and a live one
// is not pinged; beyond a second every session is pinged, as pgx does. The idle
// times are given, not waited for.
func TestSessionLimits_OnlySessionsIdleBeyondTheThresholdAreLookedAt(t *testing.T) {
	needServers(t)
	ctx := context.Background()
	session := func(dsn string) (*lakebase.Connector, *pgconn.PgConn) {
		c, err := lakebase.NewConnector(dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		dc, err := c.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dc.Close() })
		px, err := dc.(*lakebase.Conn).RawConn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c, px.PgConn()
	}
	const within, beyond = lakebase.LookAfterIdle, lakebase.LookAfterIdle + time.Millisecond

	e := lakebasetest.Start(t, lakebasetest.Options{IdleSessionTimeout: 200 * time.Millisecond})
	c, ended := session(e.OAuthClientDSN())
	waitCount(t, e, lakebasetest.EPSessionEnded+":idle", 1)
	if lakebase.PingBeforeReuse(c, ended, within) || ended.IsClosed() {
		t.Fatal("a session idle within the threshold was looked at")
	}
	if !lakebase.PingBeforeReuse(c, ended, beyond) || !ended.IsClosed() {
		t.Fatal("a session the server ended, idle beyond the threshold, was not found ended")
	}

	// A live session (the shared emulator ends none).
	c, live := session(emu.OAuthClientDSN())
	if lakebase.PingBeforeReuse(c, live, beyond) || lakebase.PingBeforeReuse(c, live, time.Second) || live.IsClosed() {
		t.Fatal("a live session idle less than a second was pinged or closed")
	}
	if !lakebase.PingBeforeReuse(c, live, time.Second+time.Millisecond) || live.IsClosed() {
		t.Fatal("a session idle over a second was not pinged (pgx's rule)")
	}
}
