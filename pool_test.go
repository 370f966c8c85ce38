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
