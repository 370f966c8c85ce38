package lakebase_test

import (
	"context"
	"database/sql"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// TestSoak_ShortCredentialsUnderLoad: 10 s credentials, 32 goroutines running queries
// on a pool whose connections live 1 s (so connections open all the time).
func TestSoak_ShortCredentialsUnderLoad(t *testing.T) {
	needServers(t)
	dur := pick(10*time.Second, 60*time.Second)
	emu.SetCredentialLifetime(10 * time.Second) // handed out until 2 s before expiry: a connect on a loaded machine fits
	t.Cleanup(func() { emu.SetCredentialLifetime(0) })
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()

	mints := &mintLog{}
	c, err := lakebase.NewConnector(emu.OAuthClientDSN(), lakebase.WithObserver(mints))
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
	if slow := mints.excused(); stats.Credential.Stalls != 0 && slow == 0 || stats.WorkspaceToken.Stalls != 0 {
		t.Fatalf("connects waited on the IdP after warm-up though every refresh and login came in time: %+v", stats)
	} else if slow > 0 {
		t.Logf("%d late refreshes or logins outlived by their credential (the machine was that slow); %d connects waited", slow, stats.Credential.Stalls)
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

// mintLog records the credential mints of a connector (an Observer), to tell a
// connect that waited because the refresh ahead of expiry was late (its mint ended
// after the credential it replaces stopped being handed out: on a machine too
// loaded to run it in time) from one that waited for no reason.
type mintLog struct {
	mu              sync.Mutex
	mints           []lakebase.Event
	expiredMidLogin int
}

func (m *mintLog) OnEvent(_ context.Context, e lakebase.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case e.Kind == lakebase.EventCredentialMint && e.Outcome == lakebase.OutcomeOK:
		m.mints = append(m.mints, e)
	case e.Kind == lakebase.EventLogin && e.ErrorCode == "28P01" && !e.Start.Add(e.Duration).Before(e.Expiry):
		// A login still under way when its credential expired (it began while the
		// credential was handed out, on a machine too loaded to finish in time): the
		// server refused it, and the retry waited for a new credential.
		m.expiredMidLogin++
	}
}

// excused is how many connects may have waited for a credential because the
// machine was too slow: refreshes ahead of expiry that were late, and logins whose
// credential expired while they ran.
func (m *mintLog) excused() int {
	late := m.late()
	m.mu.Lock()
	defer m.mu.Unlock()
	return late + m.expiredMidLogin
}

// late counts the refreshes ahead of expiry that were late: mints that started
// while the previous credential was still handed out (a fifth of its lifetime
// before its expiry, at most 30 s, as the driver's caches hand one out) and ended
// after. A mint that started after that moment was no refresh ahead: a connect
// started it, and a connect that waited for it is a stall nothing excuses.
func (m *mintLog) late() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for i := 1; i < len(m.mints); i++ {
		prev, cur := m.mints[i-1], m.mints[i]
		prevEnd := prev.Start.Add(prev.Duration)
		deadline := prev.Expiry.Add(-min(prev.Expiry.Sub(prevEnd)/5, 30*time.Second))
		if cur.Start.Before(deadline) && cur.Start.Add(cur.Duration).After(deadline) {
			n++
		}
	}
	return n
}
