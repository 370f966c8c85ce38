package lakebase_test

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// Long variants: LAKEBASE_LONG=1 go test -run 'Soak|Fault' (make soak).
var long = os.Getenv("LAKEBASE_LONG") != ""

func pick[T any](short, lng T) T {
	if long {
		return lng
	}
	return short
}

// load runs workers goroutines that each call work until stop is closed, and
// returns how many calls ran and the errors they returned.
func load(workers int, stop <-chan struct{}, work func(worker, i int) error) (calls int64, errs []error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var n atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n.Add(1)
				if err := work(w, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return n.Load(), errs
}

func after(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}

// TestPipeline_AbsorbsAFlakyIdPAndCredentialAPI: 30% of token and credential requests fail with
// 503 and every request takes a random 0-1 s. The user sees no error: retries and
// the refresh-ahead cache absorb it.
func TestPipeline_AbsorbsAFlakyIdPAndCredentialAPI(t *testing.T) {
	needServers(t)
	dur := pick(8*time.Second, 60*time.Second)
	for _, ep := range []string{lakebasetest.EPToken, lakebasetest.EPCredAutoscaling} {
		emu.SetErrorRate(ep, 0.3)
		emu.SetRandomLatency(ep, time.Second)
	}
	// Lifetimes short enough to refresh during the run, long enough that a connect
	// on a loaded machine never holds a credential past its expiry (handed out until
	// 2 s before it, refreshed at half its life).
	emu.SetCredentialLifetime(10 * time.Second)
	emu.SetTokenLifetime(10 * time.Second)
	t.Cleanup(func() {
		for _, ep := range []string{lakebasetest.EPToken, lakebasetest.EPCredAutoscaling} {
			emu.SetErrorRate(ep, 0)
			emu.SetRandomLatency(ep, 0)
		}
		emu.SetCredentialLifetime(0)
		emu.SetTokenLifetime(time.Hour)
	})
	emu.ResetCounts()
	db, c := newDB(t, emu.OAuthClientDSN())
	db.SetMaxIdleConns(0) // every query is a new connection
	calls, errs := load(8, after(dur), func(_, _ int) error {
		var v int
		return db.QueryRow("SELECT 1").Scan(&v)
	})
	t.Logf("%d connects+queries; IdP calls %d, credential calls %d (30%% failing); stats %+v",
		calls, emu.Count(lakebasetest.EPToken), emu.Count(lakebasetest.EPCredAutoscaling), c.TokenStats())
	if len(errs) > 0 {
		t.Fatalf("%d of %d failed; first: %v", len(errs), calls, errs[0])
	}
}

// TestPipeline_RecoversFromCredentialsRevokedMidRun: every credential is revoked, again and again,
// while 16 goroutines open connections. The user sees no error: a refused login mints
// a credential after the refusal and retries once. (Each revocation waits until the
// connects under way when the driver minted the new credential have ended: two
// revocations inside one retry are a double refusal, which the driver reports as a
// LoginError by design. The wait is for those connects, not a time: a loaded machine
// only makes it longer.)
func TestPipeline_RecoversFromCredentialsRevokedMidRun(t *testing.T) {
	needServers(t)
	db, c := newDB(t, emu.OAuthClientDSN())
	db.SetMaxIdleConns(0)
	stop := after(pick(4*time.Second, 20*time.Second))
	revocations := 0
	done := make(chan struct{})
	var inFlight sync.RWMutex // connects hold it shared; the revoker takes it to wait for them
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			before := c.TokenStats().Credential.Fetches
			emu.RevokeAllCredentials()
			revocations++
			for c.TokenStats().Credential.Fetches == before { // the driver mints a new one...
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			inFlight.Lock() // ...and the connects (and their retries) under way end
			inFlight.Unlock()
		}
	}()
	emu.ResetCounts()
	calls, errs := load(16, stop, func(_, _ int) error {
		inFlight.RLock()
		defer inFlight.RUnlock()
		var v int
		return db.QueryRow("SELECT 1").Scan(&v)
	})
	<-done
	t.Logf("%d connects, %d revocations, %d refused logins recovered", calls, revocations, emu.Count(lakebasetest.EPLoginRefused))
	if len(errs) > 0 {
		t.Fatalf("%d of %d failed; first: %v", len(errs), calls, errs[0])
	}
	if emu.Count(lakebasetest.EPLoginRefused) == 0 {
		t.Fatal("no login was refused: the test did not revoke anything in use")
	}
}

// TestPipeline_SessionsCutByTheFrontDoorLoseNoAcknowledgedWrite: the front door cuts every session twice a
// second while 8 goroutines insert rows. The user sees errors only for statements in
// flight on a cut session; the pool replaces the connections; every insert that was
// acknowledged is in the table.
func TestPipeline_SessionsCutByTheFrontDoorLoseNoAcknowledgedWrite(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthClientDSN())
	mustExec(t, db, `CREATE TABLE IF NOT EXISTS drop_t (worker int, i int)`)
	t.Cleanup(func() { db.Exec(`DROP TABLE drop_t`) })
	stop := after(pick(3*time.Second, 20*time.Second))
	var drops atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				emu.DropSessions()
				drops.Add(1)
			}
		}
	}()
	var acked atomic.Int64
	calls, errs := load(8, stop, func(w, i int) error {
		_, err := db.Exec(`INSERT INTO drop_t VALUES ($1, $2)`, w, i)
		if err == nil {
			acked.Add(1)
		}
		return err
	})
	for _, err := range errs {
		var le *lakebase.LoginError
		if errors.As(err, &le) || errors.Is(err, lakebase.ErrCredential) {
			t.Fatalf("a dropped session caused a login or credential error: %v", err)
		}
	}
	// Afterwards everything works, and nothing acknowledged is lost.
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM drop_t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d inserts, %d failed in flight over %d drops, %d acknowledged, %d in the table", calls, len(errs), drops.Load(), acked.Load(), n)
	if n < acked.Load() || n > calls {
		t.Fatalf("%d rows for %d acknowledged inserts", n, acked.Load())
	}
	// Each drop can fail the statement in flight on each of the 8 sessions, and at
	// most one more per worker that picks an idle connection cut with it.
	if int64(len(errs)) > drops.Load()*16 {
		t.Fatalf("%d failures for %d drops of at most 8 sessions", len(errs), drops.Load())
	}
}
