package lakebase_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
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
