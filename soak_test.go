package lakebase_test

import (
	"database/sql"
	"runtime"
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
