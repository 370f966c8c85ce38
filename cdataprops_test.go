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
	"github.com/lakebase-go/lakebase/lakebasetest"
)

func TestTimeZone_SetsTheSessionTimeZone(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN("TimeZone=Europe/Paris"))
	var tz string
	if err := db.QueryRow("SHOW TimeZone").Scan(&tz); err != nil || tz != "Europe/Paris" {
		t.Fatalf("TimeZone %q, %v", tz, err)
	}
	// Through the token pipeline and pgxpool too.
	c, err := lakebase.NewConnector(emu.OAuthClientDSN("TimeZone=Asia/Tokyo"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pool := poolOf(t, c)
	if err := pool.QueryRow(context.Background(), "SHOW TimeZone").Scan(&tz); err != nil || tz != "Asia/Tokyo" {
		t.Fatalf("pool TimeZone %q, %v", tz, err)
	}
}

func TestTimeZone_ValidatedWhenParsed(t *testing.T) {
	for _, tz := range []string{"Mars/Olympus", "Local", "UTC'; DROP TABLE x; --", "+25:00"} {
		var ce *lakebase.ConfigError
		_, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;TimeZone='" + strings.ReplaceAll(tz, "'", "''") + "'")
		if !errors.As(err, &ce) || ce.Property != "TimeZone" {
			t.Fatalf("%q: %v", tz, err)
		}
	}
	for _, tz := range []string{"UTC", "America/New_York", "Europe/Paris"} {
		if _, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;TimeZone=" + tz); err != nil {
			t.Fatalf("%q: %v", tz, err)
		}
	}
}

func TestConnectOnOpen_FailsAtStartUp(t *testing.T) {
	needServers(t)
	// A wrong secret fails in NewConnector (and so in sql.Open), not at the first query.
	if _, err := lakebase.NewConnector(emu.OAuthClientDSN("OAuthClientSecret=wrong", "ConnectOnOpen=true")); err == nil ||
		!strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
	// A role that does not exist fails too (the login itself is tried).
	if _, err := lakebase.NewConnector(passwordDSN("User=nobody_here;ConnectOnOpen=true")); !errors.Is(err, lakebase.ErrLoginRefused) {
		t.Fatalf("unknown role: %v", err)
	}
	before := emu.Count(lakebasetest.EPLogin)
	c, err := lakebase.NewConnector(emu.OAuthClientDSN("ConnectOnOpen=true"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := emu.Count(lakebasetest.EPLogin) - before; n != 1 {
		t.Fatalf("%d logins at construction, want 1", n)
	}
	// Without it, nothing happens until the first statement.
	before = emu.Count(lakebasetest.EPLogin)
	c2, err := lakebase.NewConnector(emu.OAuthClientDSN("OAuthClientSecret=wrong"))
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if emu.Count(lakebasetest.EPLogin) != before {
		t.Fatal("a login happened without ConnectOnOpen")
	}
}

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

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// MaxRows caps what every query returns; column metadata is pgx's.
func TestMaxRows_CapsEveryQuery(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN("MaxRows=3"))
	rows, err := db.Query("SELECT g, g::text AS s FROM generate_series(1, 100) g")
	if err != nil {
		t.Fatal(err)
	}
	types, _ := rows.ColumnTypes()
	if types[0].DatabaseTypeName() != "INT4" || types[1].DatabaseTypeName() != "TEXT" {
		t.Fatalf("column types %s %s", types[0].DatabaseTypeName(), types[1].DatabaseTypeName())
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != 3 {
		t.Fatalf("%d rows, %v", n, err)
	}
	rows.Close()
	// The connection is still good after the discarded rows.
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	if _, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;MaxRows=-5"); err == nil {
		t.Fatal("MaxRows=-5 accepted")
	}
}

// UseSSL=false asks for plain text: refused whenever a token is the password.
func TestUseSSLFalse_RefusedForTokens(t *testing.T) {
	var ce *lakebase.ConfigError
	if _, err := lakebase.ParseDSN("DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b;UseSSL=false"); !errors.As(err, &ce) || ce.Property != "SSLMode" {
		t.Fatalf("UseSSL=false with OAuth: %v", err)
	}
	cfg, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;UseSSL=false")
	if err != nil || cfg.SSLMode != lakebase.SSLDisable {
		t.Fatalf("UseSSL=false on loopback: %v %v", cfg, err)
	}
}
