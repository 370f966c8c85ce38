package lakebase_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/settings"
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

// TestSoak_ShortCredentialsUnderLoad: 10 s credentials, 32 goroutines running queries
// on a pool whose connections live 1 s (so connections open all the time).
func TestSoak_ShortCredentialsUnderLoad(t *testing.T) {
	needServers(t)
	dur := pick(10*time.Second, 60*time.Second)
	emu.SetCredentialLifetime(10 * time.Second) // handed out until 2 s before expiry: a connect on a loaded machine fits
	t.Cleanup(func() { emu.SetCredentialLifetime(0) })
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()

	c, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(32)
	db.SetConnMaxLifetime(time.Second)
	if err := db.Ping(); err != nil { // warm-up: the first token and credential
		t.Fatal(err)
	}
	emu.ResetCounts()
	var heapMid uint64
	time.AfterFunc(dur/4, func() { heapMid = heapInUse() })
	calls, errs := load(32, after(dur), func(_, i int) error {
		var v int
		return db.QueryRow("SELECT $1::int", i).Scan(&v)
	})
	heapEnd := heapInUse()
	stats := c.TokenStats()
	logins := emu.Count(lakebasetest.EPLogin)
	db.Close()

	t.Logf("%v: %d queries, %d logins, %d credential mints (%d ahead), %d stalls; heap %d KiB at 1/4, %d KiB at end",
		dur, calls, logins, emu.Count(lakebasetest.EPCredAutoscaling), stats.Credential.AheadFetches, stats.Credential.Stalls, heapMid/1024, heapEnd/1024)
	if len(errs) > 0 {
		t.Fatalf("%d of %d queries failed; first: %v", len(errs), calls, errs[0])
	}
	if stats.Credential.Stalls != 0 || stats.WorkspaceToken.Stalls != 0 {
		t.Fatalf("connects waited on the IdP after warm-up: %+v", stats)
	}
	if logins < int64(dur/time.Second) {
		t.Fatalf("only %d logins: the soak did not open connections", logins)
	}
	if heapEnd > heapMid*2+8<<20 {
		t.Fatalf("heap grew from %d to %d KiB", heapMid/1024, heapEnd/1024)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // sessions close asynchronously in the emulator
	}
	if g := runtime.NumGoroutine(); g > baseGoroutines {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after Close\n%s", baseGoroutines, g, buf[:runtime.Stack(buf, true)])
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestFault_FlakyIdPAndCredentialAPI: 30% of token and credential requests fail with
// 503 and every request takes a random 0-1 s. The user sees no error: retries and
// the refresh-ahead cache absorb it.
func TestFault_FlakyIdPAndCredentialAPI(t *testing.T) {
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

// TestFault_CredentialRevokedMidRun: every credential is revoked, again and again,
// while 16 goroutines open connections. The user sees no error: a refused login mints
// a credential after the refusal and retries once. (Each revocation waits until the
// driver has recovered from the previous one: two revocations inside one retry are a
// double refusal, which the driver reports as a LoginError by design.)
func TestFault_CredentialRevokedMidRun(t *testing.T) {
	needServers(t)
	db, c := newDB(t, emu.OAuthClientDSN())
	db.SetMaxIdleConns(0)
	stop := after(pick(4*time.Second, 20*time.Second))
	revocations := 0
	done := make(chan struct{})
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
			time.Sleep(500 * time.Millisecond) // ...and the retries in flight finish
		}
	}()
	emu.ResetCounts()
	calls, errs := load(16, stop, func(_, _ int) error {
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

// TestFault_FrontDoorDropsEverySession: the front door cuts every session twice a
// second while 8 goroutines insert rows. The user sees errors only for statements in
// flight on a cut session; the pool replaces the connections; every insert that was
// acknowledged is in the table.
func TestFault_FrontDoorDropsEverySession(t *testing.T) {
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

// TestFault_KillNineWhileWritingTheTokenFile kills a process that keeps rewriting the
// settings file, many times at random moments: the file is always a whole version.
func TestFault_KillNineWhileWritingTheTokenFile(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	rounds := pick(15, 60)
	versions := 0
	for r := 0; r < rounds; r++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=write-loop", "LAKEBASE_HELPER_FILE="+file)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for its first write (a loaded machine starts processes slowly), then
		// kill it at a random moment of the writes that follow.
		ready := make(chan bool, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			ready <- strings.HasPrefix(line, "ready")
			io.Copy(io.Discard, stdout)
		}()
		select {
		case ok := <-ready:
			if !ok {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the writer failed before its first write")
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the writer did not start")
		}
		time.Sleep(time.Duration(1+rand.IntN(40)) * time.Millisecond) // a random moment
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		data, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue // killed before the first write
		}
		var s settings.Settings
		if err := json.Unmarshal(data, &s); err != nil || s.Version != settings.SettingsVersion || s.Tokens["w|c|s"] == nil {
			t.Fatalf("round %d: the file is torn (%v): %.200q", r, err, data)
		}
		versions++
	}
	if versions == 0 {
		t.Fatal("the writer never wrote")
	}
	// A driver opening the file after all those kills reads it.
	st, _ := settings.OpenStore(file)
	if err := st.Update(context.Background(), func(*settings.Settings) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
}

// helperWriteLoop rewrites the settings file as fast as it can, with contents of
// changing size.
func helperWriteLoop() int {
	st, _ := settings.OpenStore(os.Getenv("LAKEBASE_HELPER_FILE"))
	for i := 0; ; i++ {
		err := st.Update(context.Background(), func(s *settings.Settings) (bool, error) {
			s.Tokens["w|c|s"] = &settings.StoredToken{AccessToken: strings.Repeat("a", 1000+(i%50)*400), RefreshToken: fmt.Sprint(i)}
			return true, nil
		})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if i == 0 {
			fmt.Println("ready")
		}
	}
}

// TestFault_EightProcessesShareRotatingRefreshTokens: 8 processes refresh one stored
// login through one settings file (10 times each; 50 with LAKEBASE_LONG) with
// rotation and reuse detection on. No refresh token is ever redeemed twice.
func TestFault_EightProcessesShareRotatingRefreshTokens(t *testing.T) {
	needServers(t)
	sharedRefreshRun(t, 8, pick(10, 50))
}

func sharedRefreshRun(t *testing.T, procs, perProcess int) {
	sharedRefreshRunAt(t, filepath.Join(t.TempDir(), "shared.json"), procs, perProcess)
}

// sharedRefreshRunAt runs the shared-refresh processes on the store at file (a
// path or a keyring:// location).
func sharedRefreshRunAt(t *testing.T, file string, procs, perProcess int) {
	emu.SetTokenLifetime(time.Second) // every use needs a refresh
	t.Cleanup(func() { emu.SetTokenLifetime(time.Hour) })
	rt := userRefreshToken(t)
	seed, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthRefreshToken="+rt, "OAuthSettingsLocation="+file))
	currentUser(t, seed)
	emu.ResetCounts()

	dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file)
	var wg sync.WaitGroup
	outs := make([]string, procs)
	errs := make([]error, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=refresh-loop", "LAKEBASE_HELPER_DSN="+dsn, fmt.Sprintf("LAKEBASE_HELPER_N=%d", perProcess))
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range procs {
		if errs[i] != nil || !strings.Contains(outs[i], "helper ok") {
			t.Fatalf("process %d: %v (reuse detected %d times)\n%s", i, errs[i], emu.Count("refresh.reuse_detected"), outs[i])
		}
	}
	if n := emu.Count("refresh.reuse_detected"); n != 0 {
		t.Fatalf("reuse detection tripped %d times", n)
	}
	if n := emu.Count("token:refresh_token"); n < int64(perProcess) {
		t.Fatalf("only %d refreshes happened; the test did not exercise rotation", n)
	}
	t.Logf("%d refreshes across %d processes, no reuse", emu.Count("token:refresh_token"), procs)
}

// --- security ---

// TestSecurity_NoPlaintextFallback: a server that declines TLS never gets a password.
func TestSecurity_NoPlaintextFallback(t *testing.T) {
	needServers(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 8)
				if _, err := c.Read(buf); err != nil {
					return
				}
				c.Write([]byte{'N'}) // "no TLS here"
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				rest := make([]byte, 4096)
				n, _ := c.Read(rest)
				got <- rest[:n]
			}()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	for _, mode := range []string{"require", "verify-ca", "verify-full"} {
		db, _ := newDB(t, emu.OAuthClientDSN("Server=127.0.0.1", fmt.Sprintf("Port=%d", port), "SSLMode="+mode, "Timeout=5"))
		if err := db.Ping(); err == nil {
			t.Fatalf("%s: connected to a server without TLS", mode)
		}
		select {
		case b := <-got:
			if len(b) > 0 {
				t.Fatalf("%s: the driver sent %d bytes in clear text after TLS was declined", mode, len(b))
			}
		case <-time.After(5 * time.Second):
		}
	}
}

func TestSecurity_PKCEIsS256Only(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthPKCEDSN("OAuthSettingsLocation=memory://s256"))
	var r authURLRow
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	checkAuthURL(t, r, "http://localhost:8020")
	if strings.Contains(r.URL, "plain") || strings.Contains(r.URL, r.Verifier) {
		t.Fatal("the authorization URL offers plain PKCE or holds the verifier")
	}
}
