package lakebasetest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/pgcluster"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// eventServer starts an emulator with a pooled host and a native password role
// that owns a table holding one row.
func eventServer(t *testing.T) *lakebasetest.Server {
	t.Helper()
	testenv.NeedPgBouncer(t)
	s := lakebasetest.Start(t, lakebasetest.Options{Pooler: true})
	if err := s.AddPasswordRole("ev_app", "ev-pw"); err != nil {
		t.Fatal(err)
	}
	pc := connectTo(t, s, s.Port)
	if _, err := pc.Exec(context.Background(), "CREATE TABLE ev (v int); INSERT INTO ev VALUES (1)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	pc.Close(context.Background())
	return s
}

func dialTo(s *lakebasetest.Server, port int) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d dbname=%s user=ev_app password=ev-pw sslmode=verify-full sslrootcert=%s",
		s.Host, port, s.Database, s.CAFile))
}

func connectTo(t *testing.T, s *lakebasetest.Server, port int) *pgconn.PgConn {
	t.Helper()
	pc, err := dialTo(s, port)
	if err != nil {
		t.Fatalf("login on port %d: %v", port, err)
	}
	t.Cleanup(func() { pc.Close(context.Background()) })
	return pc
}

// inFlight starts SELECT pg_sleep(60) on pc, and returns once PostgreSQL runs it
// (pg_stat_activity, seen through watch), with the channel of its error.
func inFlight(t *testing.T, pc, watch *pgconn.PgConn, tag string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := pc.Exec(context.Background(), "SELECT pg_sleep(60) /* "+tag+" */").ReadAll()
		done <- err
	}()
	for i := 0; ; i++ {
		res, err := watch.Exec(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%/* "+tag+" */%' AND pid <> pg_backend_pid()").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if string(res[0].Rows[0][0]) == "1" {
			return done
		}
		if i > 3000 {
			t.Fatalf("the %s statement never ran", tag)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkEvent runs event (a restart or a failover) with the given downtime and
// checks what a client sees on the direct and the pooled host: statements in
// flight fail with FATAL 57P01; while the compute is down a login is answered
// 57P03 (and during asserting, whatever runs); afterwards logins go through and the
// data written before is there. during runs while the compute is down.
func checkEvent(t *testing.T, s *lakebasetest.Server, event func(time.Duration) error, during func()) {
	t.Helper()
	watch := connectTo(t, s, s.Port)
	direct, pooled := connectTo(t, s, s.Port), connectTo(t, s, s.PooledPort)
	idle := connectTo(t, s, s.Port)
	directErr := inFlight(t, direct, watch, "direct")
	pooledErr := inFlight(t, pooled, watch, "pooled")

	done := make(chan error, 1)
	go func() { done <- event(3 * time.Second) }()
	for !s.ComputeDown() {
		select {
		case err := <-done:
			t.Fatalf("the event ended before the compute was seen down: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	for name, errc := range map[string]<-chan error{"direct": directErr, "pooled": pooledErr} {
		if err := <-errc; sqlState(err) != "57P01" {
			t.Errorf("a statement in flight on the %s host during the event: %v, want FATAL 57P01", name, err)
		}
	}
	for name, port := range map[string]int{"direct": s.Port, "pooled": s.PooledPort} {
		_, err := dialTo(s, port)
		if !s.ComputeDown() {
			t.Fatal("the downtime ended before the logins were tried (the machine is very slow?)")
		}
		if sqlState(err) != "57P03" {
			t.Errorf("a login on the %s host while the compute is down: %v, want 57P03", name, err)
		}
	}
	during()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Exec(context.Background(), "SELECT 1").ReadAll(); err == nil {
		t.Error("an idle session outlived the event")
	}
	for name, port := range map[string]int{"direct": s.Port, "pooled": s.PooledPort} {
		pc := connectTo(t, s, port)
		res, err := pc.Exec(context.Background(), "SELECT count(*) FROM ev WHERE v = 1").ReadAll()
		if err != nil || string(res[0].Rows[0][0]) != "1" {
			t.Errorf("the data through the %s host after the event: %v", name, err)
		}
	}
}

// RestartCompute: sessions end with 57P01, logins are answered 57P03 while the
// compute is down, the data is kept, on the direct and the pooled host.
func TestRestartCompute_EndsSessionsRefusesLoginsWhileDownKeepsTheData(t *testing.T) {
	s := eventServer(t)
	pid := s.PostgresPID()
	checkEvent(t, s, s.RestartCompute, func() {})
	if s.PostgresPID() == pid {
		t.Error("PostgreSQL was not restarted (the same process)")
	}
	if n := s.Count(lakebasetest.EPComputeRestart); n != 1 {
		t.Errorf("%d restarts counted", n)
	}
	if n := s.Count(lakebasetest.EPSessionKilled); n < 4 {
		t.Errorf("%d sessions ended by the restart, want at least 4", n)
	}
}

// instanceState reads the Provisioned instance's state and host.
func instanceState(t *testing.T, s *lakebasetest.Server) (state, host string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/oidc/v1/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"all-apis"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.ServicePrincipal.ClientID, s.ServicePrincipal.ClientSecret)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	getJSON(t, req, &tok)
	req, _ = http.NewRequest("GET", s.URL+"/api/2.0/database/instances/"+s.Instance, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	var inst struct {
		State string `json:"state"`
		DNS   string `json:"read_write_dns"`
	}
	getJSON(t, req, &inst)
	return inst.State, inst.DNS
}

func getJSON(t *testing.T, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d", req.URL.Path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// Failover: as a restart, and meanwhile the Provisioned instance reports
// FAILING_OVER; its host name is the same before, during and after.
func TestFailover_InstanceReportsFailingOverHostUnchanged(t *testing.T) {
	s := eventServer(t)
	state, host := instanceState(t, s)
	if state != "AVAILABLE" {
		t.Fatalf("state before: %s", state)
	}
	checkEvent(t, s, s.Failover, func() {
		if st, h := instanceState(t, s); st != "FAILING_OVER" || h != host {
			t.Errorf("during the failover: state %s, host %s (was %s)", st, h, host)
		}
	})
	if st, h := instanceState(t, s); st != "AVAILABLE" || h != host {
		t.Errorf("after the failover: state %s, host %s (was %s)", st, h, host)
	}
	if n := s.Count(lakebasetest.EPFailover); n != 1 {
		t.Errorf("%d failovers counted", n)
	}
}

// Suspend works without ScaleToZero too: the next login is answered 57P03 while
// the endpoint wakes, then logins go through.
func TestSuspend_WithoutScaleToZeroWakesOnConnect(t *testing.T) {
	testenv.NeedPostgres(t)
	s := lakebasetest.Start(t, lakebasetest.Options{WakeDelay: 300 * time.Millisecond})
	if err := s.AddPasswordRole("ev_app", "ev-pw"); err != nil {
		t.Fatal(err)
	}
	connectTo(t, s, s.Port)
	s.Suspend()
	if _, err := dialTo(s, s.Port); sqlState(err) != "57P03" {
		t.Fatalf("a login to a suspended endpoint: %v, want 57P03", err)
	}
	var err error
	for i := 0; i < 500; i++ {
		var pc *pgconn.PgConn
		if pc, err = dialTo(s, s.Port); err == nil {
			pc.Close(context.Background())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || s.Wakes() != 1 {
		t.Fatalf("after the wake: %v, %d wakes", err, s.Wakes())
	}
}

// The pooled host's PgBouncer is part of the compute, as on the service (the
// endpoint's pooler runs beside its PostgreSQL and comes back with it): after a
// restart or failover the first login through the pooled host runs its first
// statement, even when a client was queued in the pooler for a server session as
// the compute went down. (A pooler that lived through the downtime retried its
// server logins for that client meanwhile, and after their failure refused every
// client with "server login has been failing, try again later" until
// server_login_retry had passed and a new server login had finished.)
func TestComputeEvents_PooledHostTakesTheFirstLoginOnceTheComputeIsBack(t *testing.T) {
	testenv.NeedPgBouncer(t)
	s := lakebasetest.Start(t, lakebasetest.Options{Pooler: true, PoolerPoolSize: 1})
	if err := s.AddPasswordRole("ev_app", "ev-pw"); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []struct {
		name string
		do   func(time.Duration) error
	}{{"restart", s.RestartCompute}, {"failover", s.Failover}} {
		t.Run(ev.name, func(t *testing.T) {
			watch := connectTo(t, s, s.Port)
			// The pool's one server session is busy, so the next statement through
			// the pooler waits in its queue.
			busy := connectTo(t, s, s.PooledPort)
			busyErr := inFlight(t, busy, watch, "busy-"+ev.name)
			queued := connectTo(t, s, s.PooledPort)
			queuedErr := make(chan error, 1)
			go func() {
				_, err := queued.Exec(context.Background(), "SELECT 1").ReadAll()
				queuedErr <- err
			}()
			// Nothing outside PgBouncer shows its queue: give the statement time to
			// reach it. (Had it not, the pooler would have nothing to retry and the
			// check below would pass whatever the emulator did.)
			time.Sleep(300 * time.Millisecond)
			if err := ev.do(2 * time.Second); err != nil {
				t.Fatal(err)
			}
			<-busyErr
			<-queuedErr
			pc, err := dialTo(s, s.PooledPort)
			if err == nil {
				defer pc.Close(context.Background())
				_, err = pc.Exec(context.Background(), "SELECT 1").ReadAll()
			}
			if err != nil {
				t.Errorf("the first login and statement through the pooled host after the %s: %v", ev.name, err)
			}
		})
	}
}

// Close during a compute event's downtime ends the downtime instead of waiting it
// out (lakebase-local stops on SIGTERM during `restart?downtime=10m`), whatever the
// downtime, the largest Duration too (not an overflowed deadline that fails the
// restart at once); the event then fails, a later one fails at once, and what was
// committed before is in the data directory for the next emulator.
func TestRestartCompute_CloseDuringTheDowntimeEndsIt(t *testing.T) {
	testenv.NeedPostgres(t)
	for _, downtime := range []time.Duration{time.Hour, time.Duration(math.MaxInt64)} {
		t.Run(downtime.String(), func(t *testing.T) {
			dir := filepath.Join(dataDirBase(t), "data")
			_, noBouncer := pgcluster.FindPgBouncer()
			s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir, Pooler: noBouncer == nil}) // the pooler stops too, where installed
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Exec("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42); GRANT SELECT ON kept TO PUBLIC"); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.RestartCompute(downtime) }()
			for !s.ComputeDown() {
				select {
				case err := <-done:
					s.Close()
					t.Fatalf("RestartCompute(%v) returned before Close: %v", downtime, err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			closed := make(chan error, 1)
			go func() { closed <- s.Close() }()
			select {
			case <-closed:
			case <-time.After(2 * time.Minute): // against a downtime of an hour or more
				t.Fatal("Close waited for the compute's downtime") // (the server is left to the end of the test process)
			}
			select {
			case err := <-done:
				// Cut short by Close (canceled), not failed by a deadline of its own.
				if !errors.Is(err, context.Canceled) {
					t.Errorf("a restart cut short by Close: %v, want an error of context.Canceled", err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("RestartCompute did not return after Close")
			}
			if err := s.RestartCompute(0); err == nil {
				t.Error("RestartCompute after Close reported success")
			}
			s2, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
			if err != nil {
				t.Fatalf("the data directory after Close: %v", err)
			}
			defer s2.Close()
			db := mustOpen(t, s2.OAuthClientDSN())
			var v int
			if err := db.QueryRow("SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
				t.Fatalf("the committed row after Close during a restart: %d, %v", v, err)
			}
		})
	}
}
