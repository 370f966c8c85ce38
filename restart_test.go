package lakebase_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// A statement in flight when the compute restarts fails with an error that says
// the server ended the session (errors.Is ErrSessionEnded, a *SessionEndedError
// holding 57P01, the server's *pgconn.PgError still reachable), which Retryable
// calls worth retrying; the pool's next statement waits through the downtime and
// runs. On the direct and the pooled host.
func TestSessionEnded_InFlightStatementSaysSoAndTheNextOneWaitsThroughTheRestart(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	for _, host := range []struct {
		name  string
		extra []string
	}{{"direct", nil}, {"pooled", []string{"Pooled=true"}}} {
		t.Run(host.name, func(t *testing.T) {
			db, err := sql.Open("lakebase", e.OAuthClientDSN(host.extra...))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := db.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			mints := e.Count(lakebasetest.EPCredAutoscaling)
			errc := make(chan error, 1)
			go func() {
				_, err := db.ExecContext(ctx, "SELECT pg_sleep(60)")
				errc <- err
			}()
			waitActive(t, e, "SELECT pg_sleep(60)")
			if err := e.RestartCompute(time.Second); err != nil {
				t.Fatal(err)
			}
			err = <-errc
			var se *lakebase.SessionEndedError
			var pe *pgconn.PgError
			if !errors.Is(err, lakebase.ErrSessionEnded) || !errors.As(err, &se) || se.SQLState != "57P01" ||
				!errors.As(err, &pe) || pe.Code != "57P01" || !lakebase.Retryable(err) {
				t.Fatalf("the statement in flight: %v (%T)", err, err)
			}
			if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
				t.Fatalf("the next statement: %v", err)
			}
			if got := e.Count(lakebasetest.EPCredAutoscaling); got != mints {
				t.Errorf("%d credentials minted through the restart, want none", got-mints)
			}
		})
	}
}

// waitActive waits until PostgreSQL runs query in some session.
func waitActive(t *testing.T, e *lakebasetest.Server, query string) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		n, err := e.ActiveQueries(query)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%q never ran", query)
}

// eventFigures are the measures of one host through the compute's events.
type eventFigures struct {
	acked, failed, other int
	badConn              int      // of failed: driver.ErrBadConn
	firstOK              []string // per event: from the compute back to the first statement that succeeded
	otherErrs            []error
}

// 100 clients on the direct host and 100 on the pooled host (each host a pool of
// 25 sessions, as OpenDB keeps them) write (one INSERT each at a time) through 3 compute restarts and 1 failover: no acknowledged
// write is lost, every failed statement is one the server ended in flight
// (ErrSessionEnded, or driver.ErrBadConn once database/sql's own retries of a
// statement never sent are used up), at most one per session it ended, and no credential or token
// is minted beyond what the same clients needed before the events. Beside them, on
// each host, a service with one session and one client does the same. The time
// from the compute being back to the first success is measured and logged (for
// BENCHMARKS.md), not asserted: with 25 sessions waiting for the compute, the
// first of them to try again hides how long each waits; with one, it shows.
func TestComputeEvents_ManyClientsLoseNoAcknowledgedWriteAndMintNothingMore(t *testing.T) {
	e := pooledEmulator(t, lakebasetest.Options{})
	if err := e.Exec(`CREATE TABLE acked (id bigint PRIMARY KEY, host text); GRANT ALL ON acked TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	hosts := []struct {
		name              string
		extra             []string
		clients, sessions int
	}{
		{"direct host", nil, 100, 25}, {"pooled host", []string{"Pooled=true"}, 100, 25},
		{"direct host, one session", nil, 1, 1}, {"pooled host, one session", []string{"Pooled=true"}, 1, 1},
	}
	inFlight := 0 // the statements the clients can have in flight at once
	dbs := make([]*sql.DB, len(hosts))
	for i, h := range hosts {
		inFlight += h.clients
		// A service's pool: OpenDB, 25 sessions kept for the 100 clients (or one for
		// one); a Timeout that a loaded machine cannot exhaust (the test counts, it
		// does not time).
		n := strconv.Itoa(h.sessions)
		c, err := lakebase.NewConnector(e.OAuthClientDSN(append(h.extra, "PoolMaxSize="+n, "PoolMinSize="+n, "Timeout=120")...))
		if err != nil {
			t.Fatal(err)
		}
		db := lakebase.OpenDB(c)
		defer db.Close()
		dbs[i] = db
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var nextID atomic.Int64
	type result struct {
		host              int
		id                int64
		err               error
		started, finished time.Time
	}
	write := func(h int) result {
		id := nextID.Add(1)
		start := time.Now()
		_, err := dbs[h].ExecContext(ctx, "INSERT INTO acked VALUES ($1, $2)", id, hosts[h].name)
		return result{host: h, id: id, err: err, started: start, finished: time.Now()}
	}
	// Before the events: every client writes a few times (sessions open, the
	// credential is minted); what that took is the baseline.
	var wg sync.WaitGroup
	for h := range hosts {
		for c := 0; c < hosts[h].clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 3; i++ {
					if r := write(h); r.err != nil {
						t.Errorf("%s before the events: %v", hosts[h].name, r.err)
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	mints, tokens := e.Count(lakebasetest.EPCredAutoscaling), e.Count(lakebasetest.EPToken)
	killed0, refused0 := e.Count(lakebasetest.EPSessionKilled), e.Count(lakebasetest.EPNotReady)

	stop := make(chan struct{})
	results := make(chan result, 1<<16)
	for h := range hosts {
		for c := 0; c < hosts[h].clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					results <- write(h)
					time.Sleep(5 * time.Millisecond) // a service's pace, not a load test
				}
			}()
		}
	}
	var all []result
	collected := make(chan struct{})
	go func() {
		for r := range results {
			all = append(all, r)
		}
		close(collected)
	}()
	var starts, backs []time.Time
	begin := time.Now().Add(500 * time.Millisecond)
	events := []struct {
		name string
		do   func(time.Duration) error
	}{{"restart", e.RestartCompute}, {"restart", e.RestartCompute}, {"restart", e.RestartCompute}, {"failover", e.Failover}}
	for _, ev := range events {
		time.Sleep(500 * time.Millisecond)
		starts = append(starts, time.Now())
		if err := ev.do(2 * time.Second); err != nil {
			t.Fatalf("%s: %v", ev.name, err)
		}
		backs = append(backs, time.Now())
		t.Logf("%s back at %v (%s)", ev.name, time.Since(begin).Round(time.Millisecond), time.Now().Format("15:04:05.000"))
		time.Sleep(time.Second)
	}
	time.Sleep(time.Second)
	starts = append(starts, time.Now()) // the end of the last event's window
	close(stop)
	wg.Wait()
	close(results)
	<-collected

	figs := make([]eventFigures, len(hosts))
	acked := map[int64]bool{}
	for _, r := range all {
		f := &figs[r.host]
		switch {
		case r.err == nil:
			f.acked++
			acked[r.id] = true
		case errors.Is(r.err, lakebase.ErrSessionEnded):
			f.failed++
		case errors.Is(r.err, driver.ErrBadConn):
			// A session the event ended before its statement was sent, when
			// database/sql had used its own retries (Retryable is true).
			f.failed++
			f.badConn++
		default:
			f.other++
			if len(f.otherErrs) < 5 {
				f.otherErrs = append(f.otherErrs, fmt.Errorf("from %v to %v after the first event began: %w",
					r.started.Sub(begin).Round(time.Millisecond), r.finished.Sub(begin).Round(time.Millisecond), r.err))
			}
		}
	}
	// Each event's window runs from the compute being back to the next event's
	// start: a success after that is the next event's, not this one's.
	for h := range hosts {
		for i, back := range backs {
			first := time.Duration(-1)
			for _, r := range all {
				if r.host == h && r.err == nil && r.finished.After(back) && r.finished.Before(starts[i+1]) &&
					(first < 0 || r.finished.Sub(back) < first) {
					first = r.finished.Sub(back)
				}
			}
			fig := first.Round(time.Millisecond).String()
			if first < 0 {
				fig = "none within " + starts[i+1].Sub(back).Round(time.Millisecond).String()
			}
			figs[h].firstOK = append(figs[h].firstOK, fig)
		}
	}

	// Every acknowledged write is there.
	rows, err := dbs[0].QueryContext(ctx, "SELECT id FROM acked")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for id := range acked {
		if !stored[id] {
			lost++
		}
	}
	killed := e.Count(lakebasetest.EPSessionKilled) - killed0
	failed := 0
	for h, f := range figs {
		failed += f.failed
		t.Logf("%s: %d clients, %d acknowledged writes, %d failed in flight (ErrSessionEnded; %d of them driver.ErrBadConn), %d other failures; compute back to first success: %v",
			hosts[h].name, hosts[h].clients, f.acked, f.failed, f.badConn, f.other, f.firstOK)
		for _, err := range f.otherErrs {
			t.Errorf("%s: a failure that is not a statement in flight: %v", hosts[h].name, err)
		}
		if f.acked == 0 {
			t.Errorf("%s: no write succeeded", hosts[h].name)
		}
	}
	// Logins answered 57P03 (all the pools) are the connects the clients' wait made while
	// the compute was down: what the waiting costs the service's proxy.
	t.Logf("events: 3 restarts and 1 failover of 2 s; sessions ended by them: %d; logins refused while down: %d; acknowledged writes lost: %d; credentials minted during the events: %d, tokens: %d",
		killed, e.Count(lakebasetest.EPNotReady)-refused0, lost, e.Count(lakebasetest.EPCredAutoscaling)-mints, e.Count(lakebasetest.EPToken)-tokens)
	if lost != 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
	// Each client has at most one statement in flight when an event ends its
	// session: through 4 events, at most 4 failures per client. (The emulator's
	// count of the sessions it ended misses those PostgreSQL or PgBouncer ended
	// themselves a moment before, so it is logged, not used as the bound.)
	if max := 4 * inFlight; failed > max {
		t.Errorf("%d statements failed in flight, more than the %d that %d clients can have in flight through 4 events", failed, max, inFlight)
	}
	if got := e.Count(lakebasetest.EPCredAutoscaling); got != mints {
		t.Errorf("%d credentials minted through the events, want none beyond the %d before", got-mints, mints)
	}
	if got := e.Count(lakebasetest.EPToken); got != tokens {
		t.Errorf("%d workspace tokens fetched through the events, want none", got-tokens)
	}
}
