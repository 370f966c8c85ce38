package lakebase_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

func TestPoolProperties_AppliedByOpenDBAndPoolConfig(t *testing.T) {
	dsn := "AuthScheme=Password;Server=localhost;User=u;Password=p;PoolMaxSize=7;PoolMinSize=2;PoolIdleTimeout=30;PoolWaitTime=5"
	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != 7 {
		t.Fatalf("MaxOpenConnections %d", got)
	}
	pc, err := c.PoolConfig()
	if err != nil {
		t.Fatal(err)
	}
	if pc.MaxConns != 7 || pc.MinConns != 2 || pc.MaxConnIdleTime != 30*time.Second {
		t.Fatalf("pool config %d %d %v", pc.MaxConns, pc.MinConns, pc.MaxConnIdleTime)
	}
	for dsn, prop := range map[string]string{
		"AuthScheme=Password;Server=localhost;User=u;PoolMaxSize=2;PoolMinSize=3": "PoolMinSize",
		"AuthScheme=Password;Server=localhost;User=u;PoolMaxSize=lots":            "PoolMaxSize",
		"AuthScheme=Password;Server=localhost;User=u;PoolIdleTimeout=-4":          "PoolIdleTimeout",
		"AuthScheme=Password;Server=localhost;User=u;UseConnectionPooling=maybe":  "UseConnectionPooling",
	} {
		var ce *lakebase.ConfigError
		if _, err := lakebase.ParseDSN(dsn); !errors.As(err, &ce) || ce.Property != prop {
			t.Fatalf("%s: %v", dsn, err)
		}
	}
}

// UseConnectionPooling=false: every connection is really closed after use.
func TestPoolProperties_NoPoolingClosesEveryConnection(t *testing.T) {
	needServers(t)
	c, err := lakebase.NewConnector(passwordDSN("UseConnectionPooling=false"))
	if err != nil {
		t.Fatal(err)
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	pids := map[int]bool{}
	for range 3 {
		var pid int
		if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids[pid] = true
	}
	if len(pids) != 3 || db.Stats().Idle != 0 {
		t.Fatalf("%d sessions for 3 queries, %d idle", len(pids), db.Stats().Idle)
	}
}

// With sql.Open the driver cannot reach the pool: it says so once, at Warn.
func TestPoolProperties_WarnedOnceWithSQLOpen(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, nil))
	c, err := lakebase.NewConnector("AuthScheme=Password;Server=localhost;Port=1;User=u;Password=p;PoolMaxSize=3;Timeout=1", lakebase.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		conn, err := c.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(buf.String(), "level=WARN"); n != 1 || !strings.Contains(buf.String(), "lakebase.OpenDB") {
		t.Fatalf("%d warnings:\n%s", n, buf.String())
	}
}

// PoolConfig's sessions live at most PoolMaxLifetime (45 minutes by default): pgxpool
// adds up to MaxConnLifetimeJitter to MaxConnLifetime, so their sum is the bound, and
// the jitter ends sessions up to a tenth earlier.
func TestPoolConfig_SessionsLiveAtMostPoolMaxLifetime(t *testing.T) {
	for set, want := range map[string]time.Duration{
		"":                     lakebase.DefaultConnMaxLifetime,
		"PoolMaxLifetime=1":    time.Second,
		"PoolMaxLifetime=60":   time.Minute,
		"PoolMaxLifetime=3600": time.Hour,
		"PoolMaxLifetime=7":    7 * time.Second,
	} {
		c, err := lakebase.NewConnector("AuthScheme=Password;Server=localhost;User=u;Password=p;" + set)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := c.PoolConfig()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if longest := pc.MaxConnLifetime + pc.MaxConnLifetimeJitter; longest > want {
			t.Errorf("%q: sessions live up to %v (MaxConnLifetime %v + jitter %v), more than %v", set, longest, pc.MaxConnLifetime, pc.MaxConnLifetimeJitter, want)
		}
		if pc.MaxConnLifetimeJitter < want/10-time.Millisecond || pc.MaxConnLifetime < want*9/10-time.Millisecond {
			t.Errorf("%q: MaxConnLifetime %v, jitter %v: want sessions ended up to a tenth of %v early, no more", set, pc.MaxConnLifetime, pc.MaxConnLifetimeJitter, want)
		}
	}
}

// With OpenDB's defaults, 100 concurrent clients share at most DefaultPoolMaxSize()
// sessions and keep them: no more logins than the cap, none closed for want of
// idle room (the old defaults, no cap and 5 idle, made thousands).
func TestOpenDB_DefaultsLogInNoMoreThanTheCap(t *testing.T) {
	needServers(t)
	check := func(t *testing.T, e *lakebasetest.Server, extra ...string) {
		c, err := lakebase.NewConnector(e.OAuthClientDSN(extra...))
		if err != nil {
			t.Fatal(err)
		}
		db := lakebase.OpenDB(c)
		defer db.Close()
		limit := lakebase.DefaultPoolMaxSize()
		if st := db.Stats(); st.MaxOpenConnections != limit || limit != max(4, runtime.NumCPU()) {
			t.Fatalf("cap %d, DefaultPoolMaxSize %d", st.MaxOpenConnections, limit)
		}
		ctx := context.Background()
		before := e.Count(lakebasetest.EPLogin)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for g := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					var v int
					if err := db.QueryRowContext(ctx, "SELECT $1::int", g*100+i).Scan(&v); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		st := db.Stats()
		logins := e.Count(lakebasetest.EPLogin) - before
		t.Logf("2000 queries by 100 clients: %d logins, %d waits, cap %d", logins, st.WaitCount, limit)
		if logins < 1 || logins > int64(limit) || st.MaxIdleClosed != 0 {
			t.Fatalf("%d logins (cap %d), %d sessions closed for want of idle room", logins, limit, st.MaxIdleClosed)
		}
	}
	t.Run("direct", func(t *testing.T) { check(t, lakebasetest.Start(t, lakebasetest.Options{})) })
	t.Run("pooled", func(t *testing.T) { check(t, pooledEmulator(t, lakebasetest.Options{}), "Pooled=true") })
}

// PoolMaxSize sets the cap of both pools (OpenDB's and PoolConfig's); without it
// the cap is DefaultPoolMaxSize(), or PoolMinSize when that is larger.
func TestOpenDB_PoolMaxSizeOrPoolMinSizeSetsTheCap(t *testing.T) {
	for set, want := range map[string]int{
		"":                             lakebase.DefaultPoolMaxSize(),
		"PoolMaxSize=0":                lakebase.DefaultPoolMaxSize(),
		"PoolMaxSize=7":                7,
		"PoolMaxSize=50;PoolMinSize=5": 50,
		"PoolMinSize=1":                lakebase.DefaultPoolMaxSize(),
		"PoolMinSize=300":              300,
	} {
		c, err := lakebase.NewConnector("AuthScheme=Password;Server=localhost;User=u;Password=p;" + set)
		if err != nil {
			t.Fatal(err)
		}
		db := lakebase.OpenDB(c)
		if got := db.Stats().MaxOpenConnections; got != want {
			t.Errorf("%q: OpenDB's cap %d, want %d", set, got, want)
		}
		pc, err := c.PoolConfig()
		if err != nil || int(pc.MaxConns) != want {
			t.Errorf("%q: PoolConfig's MaxConns %d (%v), want %d", set, pc.MaxConns, err, want)
		}
		db.Close()
	}
}
