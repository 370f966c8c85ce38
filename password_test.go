package lakebase_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testca"
)

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("lakebase", dsn)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPassword_VerifyFullConnectsOverTLS(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	var ssl bool
	var user string
	if err := db.QueryRow("SELECT ssl, current_user FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE pid = pg_backend_pid()").Scan(&ssl, &user); err != nil {
		t.Fatal(err)
	}
	if !ssl || user != testRole {
		t.Fatalf("ssl=%v user=%q, want TLS session as %q", ssl, user, testRole)
	}
}

func TestPassword_SSLModes(t *testing.T) {
	needServers(t)
	caPEM := strings.TrimSpace(string(pg.CAPEM))
	cases := []struct {
		name, extra string
		wantSSL     bool
	}{
		{"require without a CA", "SSLMode=require;SSLServerCert=", true},
		{"verify-ca by IP", "Server=127.0.0.1;SSLMode=verify-ca", true},
		{"verify-full with inline PEM", "SSLMode=verify-full;SSLServerCert=\"" + caPEM + "\"", true},
		{"disable on loopback", "SSLMode=disable;SSLServerCert=", false},
		{"prefer on loopback", "SSLMode=prefer;SSLServerCert=", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, passwordDSN(tc.extra))
			var ssl bool
			if err := db.QueryRow("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
				t.Fatal(err)
			}
			if ssl != tc.wantSSL {
				t.Fatalf("ssl = %v, want %v", ssl, tc.wantSSL)
			}
		})
	}
}

func TestPassword_VerifyFullRefusesWrongCA(t *testing.T) {
	needServers(t)
	other, err := testca.New("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(f, other.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"verify-full", "verify-ca", "require"} {
		t.Run(mode, func(t *testing.T) {
			db := openDB(t, passwordDSN("SSLMode="+mode+";SSLServerCert="+f))
			err := db.Ping()
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("Ping with a wrong CA: err = %v, want a certificate error", err)
			}
		})
	}
}

func TestPassword_VerifyFullRefusesWrongHostName(t *testing.T) {
	needServers(t)
	// The server certificate names localhost, 127.0.0.1 and ::1, not this alias.
	db := openDB(t, passwordDSN("Server=127.0.0.2"))
	if err := db.Ping(); err == nil {
		t.Fatal("Ping to a host the certificate does not name succeeded with verify-full")
	}
}

func TestPassword_WrongPasswordIsLoginError(t *testing.T) {
	needServers(t)
	dsn := fmt.Sprintf("AuthScheme=Password;Server=localhost;Port=%d;Database=%s;User=%s;Password=wrong;SSLServerCert=%s", pg.Port, testDB, testRole, pg.CAFile)
	db := openDB(t, dsn)
	err := db.Ping()
	var le *lakebase.LoginError
	if !errors.As(err, &le) || le.SQLState != "28P01" || !errors.Is(err, lakebase.ErrLoginRefused) {
		t.Fatalf("err = %v, want a LoginError with 28P01", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestPassword_IgnoresPGEnvironment(t *testing.T) {
	needServers(t)
	t.Setenv("PGHOST", "203.0.113.1")
	t.Setenv("PGPORT", "1")
	t.Setenv("PGUSER", "nobody")
	t.Setenv("PGPASSWORD", "nope")
	t.Setenv("PGDATABASE", "nodb")
	t.Setenv("PGSSLMODE", "disable")
	t.Setenv("PGAPPNAME", "from-env")
	t.Setenv("PGOPTIONS", "-c search_path=nowhere")
	t.Setenv("PGTARGETSESSIONATTRS", "standby")
	t.Setenv("PGCONNECT_TIMEOUT", "1")
	db := openDB(t, passwordDSN("ApplicationName=from-dsn"))
	var app, sp, dbname string
	if err := db.QueryRow("SELECT current_setting('application_name'), current_setting('search_path'), current_database()").Scan(&app, &sp, &dbname); err != nil {
		t.Fatal(err)
	}
	if app != "from-dsn" || strings.Contains(sp, "nowhere") || dbname != testDB {
		t.Fatalf("application_name=%q search_path=%q db=%q: the environment leaked into the connection", app, sp, dbname)
	}
}

func TestPassword_Timeout(t *testing.T) {
	needServers(t)
	// A listener that accepts and never answers: the connect must give up after Timeout.
	port := silentServer(t)
	dsn := fmt.Sprintf("AuthScheme=Password;Server=127.0.0.1;Port=%d;User=u;Password=p;Timeout=1", port)
	db := openDB(t, dsn)
	start := time.Now()
	err := db.Ping()
	if err == nil {
		t.Fatal("Ping to a silent server succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Ping took %v with Timeout=1", d)
	}
}

func TestQueries_ExecQueryAndTypes(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE IF NOT EXISTS types_t (id serial PRIMARY KEY, n numeric, u uuid, j jsonb, a int[], ts timestamptz, s text)`)
	t.Cleanup(func() { db.Exec(`DROP TABLE types_t`) })

	id := uuid.New()
	ts := time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)
	res, err := db.ExecContext(ctx, `INSERT INTO types_t (n, u, j, a, ts, s) VALUES ($1, $2, $3, $4, $5, $6)`,
		"12345.678", id, `{"k": [1, 2]}`, []int32{1, 2, 3}, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("RowsAffected = %d", n)
	}
	var (
		n   pgtype.Numeric
		u   uuid.UUID
		jb  []byte
		j   map[string]any
		a   []int32
		gts time.Time
		s   sql.NullString
	)
	row := db.QueryRowContext(ctx, `SELECT n, u, j, a, ts, s FROM types_t WHERE u = $1`, id)
	m := pgtype.NewMap()
	if err := row.Scan(&n, &u, &jb, m.SQLScanner(&a), &gts, &s); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &j); err != nil {
		t.Fatal(err)
	}
	want := new(big.Int).SetInt64(12345678)
	if n.Int.Cmp(want) != 0 || n.Exp != -3 {
		t.Fatalf("numeric = %v e%d", n.Int, n.Exp)
	}
	if u != id || len(j["k"].([]any)) != 2 || len(a) != 3 || !gts.Equal(ts) || s.Valid {
		t.Fatalf("got u=%v j=%v a=%v ts=%v s=%v", u, j, a, gts, s)
	}
}

func TestQueries_NamedAndPositionalArgs(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	var sum int
	if err := db.QueryRow(`SELECT @a::int + @b::int`, pgx.NamedArgs{"a": 2, "b": 40}).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 42 {
		t.Fatalf("named: %d", sum)
	}
	if err := db.QueryRow(`SELECT $1::int * $2::int`, 6, 7).Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("positional: %d %v", sum, err)
	}
	if err := db.QueryRow(`SELECT $1::int - $2::int`, sql.Named("x", 50), sql.Named("y", 8)).Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("sql.Named in order: %d %v", sum, err)
	}
}

func TestQueries_Transactions(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE IF NOT EXISTS tx_t (v int)`)
	t.Cleanup(func() { db.Exec(`DROP TABLE tx_t`) })

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO tx_t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	tx, _ = db.BeginTx(ctx, nil)
	if _, err := tx.Exec(`INSERT INTO tx_t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var got []int
	rows, err := db.Query(`SELECT v FROM tx_t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		rows.Scan(&v)
		got = append(got, v)
	}
	if rows.Err() != nil || len(got) != 1 || got[0] != 2 {
		t.Fatalf("after rollback+commit rows = %v (%v)", got, rows.Err())
	}

	levels := map[sql.IsolationLevel]string{
		sql.LevelReadCommitted:  "read committed",
		sql.LevelRepeatableRead: "repeatable read",
		sql.LevelSerializable:   "serializable",
	}
	for lvl, want := range levels {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: lvl})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := tx.QueryRow(`SHOW transaction_isolation`).Scan(&got); err != nil || got != want {
			t.Fatalf("isolation %v: got %q (%v)", lvl, got, err)
		}
		tx.Rollback()
	}
	tx, _ = db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	_, err = tx.Exec(`INSERT INTO tx_t VALUES (3)`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("insert in a read-only transaction: %v, want SQLSTATE 25006", err)
	}
	tx.Rollback()
	if _, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelLinearizable}); err == nil {
		t.Fatal("linearizable isolation was accepted")
	}
}

func TestQueries_PreparedStatements(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	st, err := db.Prepare(`SELECT $1::int + 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 5; i++ {
		var v int
		if err := st.QueryRow(i).Scan(&v); err != nil || v != i+1 {
			t.Fatalf("prepared %d: %d %v", i, v, err)
		}
	}
}

func TestQueries_ContextCancelStopsRunningQuery(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := db.ExecContext(ctx, `SELECT pg_sleep(30)`)
	if err == nil {
		t.Fatal("pg_sleep(30) was not cancelled")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("cancel took %v", time.Since(start))
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("pool unusable after a cancel: %v", err)
	}
}

func TestRaw_ExposesPgxConnAndCopyFrom(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE IF NOT EXISTS copy_t (id int, name text)`)
	t.Cleanup(func() { db.Exec(`DROP TABLE copy_t`) })
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n int64
	err = c.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("driver conn %T has no Conn() *pgx.Conn", dc)
		}
		rows := [][]any{{1, "a"}, {2, "b"}, {3, "c"}}
		n, err = pc.Conn().CopyFrom(ctx, pgx.Identifier{"copy_t"}, []string{"id", "name"}, pgx.CopyFromRows(rows))
		return err
	})
	if err != nil || n != 3 {
		t.Fatalf("CopyFrom: n=%d err=%v", n, err)
	}
	var count int
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM copy_t`).Scan(&count); err != nil || count != 3 {
		t.Fatalf("count = %d (%v)", count, err)
	}
}

func TestPool_TwentyGoroutines(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN(""))
	db.SetMaxOpenConns(20)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				var v int
				if err := db.QueryRow(`SELECT $1::int`, g*100+i).Scan(&v); err != nil {
					errs <- err
					return
				}
				if v != g*100+i {
					errs <- fmt.Errorf("got %d want %d", v, g*100+i)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := db.Stats(); s.OpenConnections < 2 {
		t.Fatalf("pool opened %d connections for 20 goroutines", s.OpenConnections)
	}
}

func TestConnector_SQLOpenDB(t *testing.T) {
	needServers(t)
	c, err := lakebase.NewConnector(passwordDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	cfg := c.Config()
	cfg.Database = "postgres"
	c2, err := lakebase.NewConnectorFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db2 := sql.OpenDB(c2)
	defer db2.Close()
	var name string
	if err := db2.QueryRow("SELECT current_database()").Scan(&name); err != nil || name != "postgres" {
		t.Fatalf("current_database = %q, %v", name, err)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// silentServer accepts TCP connections and never answers.
func silentServer(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().(*net.TCPAddr).Port
}

// pg_stat_activity shows which client connected, and its version.
func TestApplicationName_CarriesTheVersion(t *testing.T) {
	needServers(t)
	for _, db := range []*sql.DB{openDB(t, passwordDSN("")), openDB(t, emu.OAuthClientDSN())} {
		var name string
		if err := db.QueryRow("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != "lakebase-go/"+lakebase.Version {
			t.Fatalf("application_name %q", name)
		}
	}
}
