package lakebase

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5"
)

// Fast unit tests of the database/sql wrapper: go-sqlmock's connection stands in for
// the Postgres session underneath, so these run with no server at all. Everything
// that touches a real server is tested against PostgreSQL and the emulator elsewhere.

// mockConn is what go-sqlmock's connection implements of the session interface.
type mockConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
}

// mockSession adds SessionResetter, which go-sqlmock lacks, and counts resets.
type mockSession struct {
	mockConn
	resets atomic.Int64
}

func (m *mockSession) ResetSession(context.Context) error { m.resets.Add(1); return nil }

var mockSeq atomic.Int64

// mockDB returns a *sql.DB on a lakebase connector whose sessions are one sqlmock
// connection, the mock, the session, and how many sessions were opened.
func mockDB(t *testing.T, dsn string) (*sql.DB, sqlmock.Sqlmock, *mockSession, *atomic.Int64) {
	t.Helper()
	name := "lakebase-unit-" + t.Name() + "-" + string(rune('a'+mockSeq.Add(1)%26))
	mdb, mock, err := sqlmock.NewWithDSN(name, sqlmock.MonitorPingsOption(true), sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mdb.Close() })
	dc, err := mdb.Driver().Open(name)
	if err != nil {
		t.Fatal(err)
	}
	sess := &mockSession{mockConn: dc.(mockConn)}
	c, err := NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	opened := new(atomic.Int64)
	c.open = func(context.Context) (session, *pgx.Conn, error) {
		opened.Add(1)
		return sess, nil, nil
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db, mock, sess, opened
}

// exactly matches an argument equal to v, of the same type.
type exactly struct{ v any }

func (e exactly) Match(v driver.Value) bool { return v == e.v }

const unitPasswordDSN = "AuthScheme=Password;Server=localhost;User=u;Password=p"

// A PKCE connection whose OIDC endpoints are given, so the login steps need no network.
const unitPKCEDSN = "AuthScheme=OAuthPKCE;DatabricksInstance=https://dbc-unit.cloud.databricks.com;" +
	"Endpoint=projects/p/branches/b/endpoints/e;OAuthSettingsLocation=memory://driver-unit;" +
	"OAuthAuthorizationURL=https://dbc-unit.cloud.databricks.com/oidc/v1/authorize;" +
	"OAuthAccessTokenURL=https://dbc-unit.cloud.databricks.com/oidc/v1/token"

func TestWrapper_StatementsReachTheSessionUnchanged(t *testing.T) {
	db, mock, _, _ := mockDB(t, unitPasswordDSN)
	const q = "SELECT a, b FROM t WHERE x = $1 AND y = $2 -- EXEC GetOAuthAuthorizationURL"
	// Arguments arrive as given (pgx converts them itself): an int stays an int.
	mock.ExpectQuery(q).WithArgs(exactly{42}, exactly{"s"}).WillReturnRows(sqlmock.NewRows([]string{"a", "b"}).AddRow(1, "one"))
	mock.ExpectExec("INSERT INTO t VALUES ($1)").WithArgs(exactly{7}).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec("EXECUTE myplan(1)").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec("CALL proc()").WillReturnResult(sqlmock.NewResult(0, 0))
	mock.MatchExpectationsInOrder(true)

	var a int
	var b string
	if err := db.QueryRow(q, 42, "s").Scan(&a, &b); err != nil || a != 1 || b != "one" {
		t.Fatalf("query: %v %d %q", err, a, b)
	}
	if res, err := db.Exec("INSERT INTO t VALUES ($1)", 7); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rows affected %d", n)
	}
	for _, q := range []string{"EXECUTE myplan(1)", "CALL proc()"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestWrapper_VirtualProceduresNeverReachTheSession(t *testing.T) {
	db, mock, _, opened := mockDB(t, unitPKCEDSN)
	var u, state, verifier string
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL CallbackUrl='http://localhost:8020/cb'").Scan(&u, &state, &verifier); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "https://dbc-unit.cloud.databricks.com/oidc/v1/authorize?") || state == "" || verifier == "" {
		t.Fatalf("url %q state %q", u, state)
	}
	// Prepared, inside a transaction, through Exec: still answered by the driver.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	st, err := tx.Prepare("EXECUTE GetOAuthAuthorizationURL State = ?")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.QueryRow("my-state").Scan(&u, &state, &verifier); err != nil || state != "my-state" {
		t.Fatalf("prepared: %v %q", err, state)
	}
	if _, err := tx.Exec("EXEC GetOAuthAuthorizationURL"); err != nil {
		t.Fatal(err)
	}
	// A procedure that fails (a missing input) fails without the session either.
	if _, err := tx.Exec("EXEC RefreshOAuthAccessToken"); err == nil || !strings.Contains(err.Error(), "OAuthRefreshToken") {
		t.Fatalf("missing input: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := opened.Load(); n != 0 {
		t.Fatalf("%d sessions were opened for virtual procedures", n)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestWrapper_ProceduresRefusedWithoutAPerson(t *testing.T) {
	db, _, _, opened := mockDB(t, unitPasswordDSN)
	_, err := db.Exec("EXEC GetOAuthAuthorizationURL")
	if err == nil || !strings.Contains(err.Error(), "AuthScheme=OAuthPKCE") {
		t.Fatalf("err = %v", err)
	}
	if opened.Load() != 0 {
		t.Fatal("a session was opened")
	}
}

func TestWrapper_Transactions(t *testing.T) {
	db, mock, _, _ := mockDB(t, unitPasswordDSN)
	mock.ExpectBegin()
	mock.ExpectExec("INSERT INTO t VALUES (1)").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectBegin()
	mock.ExpectExec("INSERT INTO t VALUES (2)").WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectRollback()

	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// The session is open now: BEGIN goes out at BeginTx.
	tx, err = db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// A transaction that runs nothing on a session that is not open sends nothing.
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestWrapper_EmptyTransactionOnFreshConnectionSendsNothing(t *testing.T) {
	db, mock, _, opened := mockDB(t, unitPasswordDSN)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if opened.Load() != 0 {
		t.Fatal("a session was opened for an empty transaction")
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestWrapper_ResetSessionAndIsValid(t *testing.T) {
	db, mock, sess, _ := mockDB(t, unitPasswordDSN)
	mock.ExpectExec("SET x = 1").WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectPing()
	if _, err := db.Exec("SET x = 1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil { // the pooled connection is reset before reuse
		t.Fatal(err)
	}
	if sess.resets.Load() == 0 {
		t.Fatal("ResetSession did not reach the session")
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}

	c := &Conn{}
	if !c.IsValid() {
		t.Fatal("a connection with no session yet is valid")
	}
	c.Close()
	if c.IsValid() || c.ResetSession(context.Background()) != driver.ErrBadConn {
		t.Fatal("a closed connection is valid")
	}
}

func TestWrapper_ErrorsPassThrough(t *testing.T) {
	db, mock, _, _ := mockDB(t, unitPasswordDSN)
	boom := errors.New("boom from the session")
	mock.ExpectQuery("SELECT 1").WillReturnError(boom)
	mock.ExpectExec("UPDATE t SET a = 1").WillReturnError(boom)
	mock.ExpectBegin().WillReturnError(boom)
	mock.ExpectPrepare("SELECT $1").WillReturnError(boom)
	if _, err := db.Query("SELECT 1"); !errors.Is(err, boom) {
		t.Fatalf("query: %v", err)
	}
	if _, err := db.Exec("UPDATE t SET a = 1"); !errors.Is(err, boom) {
		t.Fatalf("exec: %v", err)
	}
	if _, err := db.Begin(); !errors.Is(err, boom) {
		t.Fatalf("begin: %v", err)
	}
	if _, err := db.Prepare("SELECT $1"); !errors.Is(err, boom) {
		t.Fatalf("prepare: %v", err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestWrapper_SessionOpenFailureIsReturnedAndRetried(t *testing.T) {
	mdb, mock, err := sqlmock.New()
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()
	_ = mock
	c, err := NewConnector(unitPasswordDSN)
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("login refused")
	calls := 0
	c.open = func(context.Context) (session, *pgx.Conn, error) { calls++; return nil, nil, refused }
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SELECT 1"); !errors.Is(err, refused) {
		t.Fatalf("err = %v", err)
	}
	if _, err := db.Exec("SELECT 1"); !errors.Is(err, refused) || calls != 2 {
		t.Fatalf("second: %v after %d opens", err, calls)
	}
}
