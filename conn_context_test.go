package lakebase_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakebase-go/lakebase"
)

// The lakebase connection opens its Postgres session lazily, so work that pgx does
// at BeginTx or Prepare may happen later, under another statement's context. These
// tests run each scenario through plain pgx and through lakebase on fresh
// connections of the same server and require the same outcome: BeginTx's context
// governs the transaction (BEGIN, COMMIT, ROLLBACK), a statement's governs only
// that statement.

var sideTable atomic.Int64

// sideBySide runs scenario once through pgx and once through lakebase, each on a
// new *sql.DB (so the connection, and for lakebase its session, is fresh), and
// fails unless both report the same outcome and it equals want.
func sideBySide(t *testing.T, want string, scenario func(t *testing.T, db *sql.DB, table string) string) {
	t.Helper()
	got := map[string]string{}
	for _, name := range []string{"pgx", "lakebase"} {
		var db *sql.DB
		if name == "pgx" {
			db = pgxStdlibDB(t, "")
		} else {
			db = openDB(t, passwordDSN(""))
		}
		table := fmt.Sprintf("side_%d", sideTable.Add(1))
		if _, err := pgxStdlibDB(t, "").Exec("CREATE TABLE " + table + " (v int)"); err != nil {
			t.Fatal(err)
		}
		got[name] = scenario(t, db, table)
		db.Close()
	}
	if got["pgx"] != got["lakebase"] {
		t.Fatalf("outcomes differ:\n  pgx:      %s\n  lakebase: %s", got["pgx"], got["lakebase"])
	}
	if got["pgx"] != want {
		t.Fatalf("outcome %q, want %q", got["pgx"], want)
	}
}

func countRows(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := pgxStdlibDB(t, "").QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "context done"
	}
	return "error"
}

// The bug this file was written for: the first transaction on a fresh connection
// whose first statement ran under a shorter, since-cancelled context lost its rows.
func TestTx_StatementContextDoesNotGovernCommit(t *testing.T) {
	needServers(t)
	sideBySide(t, "insert=<nil> commit=<nil> rows=1", func(t *testing.T, db *sql.DB, table string) string {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, insErr := tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES (1)")
		cancel()
		commitErr := tx.Commit()
		return fmt.Sprintf("insert=%s commit=%s rows=%d", errText(insErr), errText(commitErr), countRows(t, table))
	})
}

func TestTx_StatementContextDoesNotGovernRollback(t *testing.T) {
	needServers(t)
	sideBySide(t, "insert=<nil> rollback=<nil> rows=0 after=<nil>", func(t *testing.T, db *sql.DB, table string) string {
		db.SetMaxOpenConns(1)
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		_, insErr := tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES (1)")
		cancel()
		rbErr := tx.Rollback()
		// The connection is still good afterwards: the same one serves the next query.
		var one int
		afterErr := db.QueryRow("SELECT 1").Scan(&one)
		return fmt.Sprintf("insert=%s rollback=%s rows=%d after=%s", errText(insErr), errText(rbErr), countRows(t, table), errText(afterErr))
	})
}

func TestTx_QueryContextDoesNotGovernCommit(t *testing.T) {
	needServers(t)
	sideBySide(t, "query=<nil> insert=<nil> commit=<nil> rows=1", func(t *testing.T, db *sql.DB, table string) string {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var n int
		qErr := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		cancel()
		_, insErr := tx.Exec("INSERT INTO " + table + " VALUES (1)")
		commitErr := tx.Commit()
		return fmt.Sprintf("query=%s insert=%s commit=%s rows=%d", errText(qErr), errText(insErr), errText(commitErr), countRows(t, table))
	})
}

func TestTx_PrepareContextDoesNotGovernTransaction(t *testing.T) {
	needServers(t)
	sideBySide(t, "prepare=<nil> exec=<nil> commit=<nil> rows=2", func(t *testing.T, db *sql.DB, table string) string {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		st, prepErr := tx.PrepareContext(ctx, "INSERT INTO "+table+" VALUES ($1)")
		cancel()
		var execErr error
		if prepErr == nil {
			for i := 0; i < 2 && execErr == nil; i++ {
				_, execErr = st.Exec(i)
			}
		}
		commitErr := tx.Commit()
		return fmt.Sprintf("prepare=%s exec=%s commit=%s rows=%d", errText(prepErr), errText(execErr), errText(commitErr), countRows(t, table))
	})
}

// A transaction's own context still governs it: cancelling it ends the
// transaction and nothing is committed.
func TestTx_BeginContextGovernsTransaction(t *testing.T) {
	needServers(t)
	sideBySide(t, "insert=<nil> commit=refused rows=0", func(t *testing.T, db *sql.DB, table string) string {
		ctx, cancel := context.WithCancel(context.Background())
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, insErr := tx.Exec("INSERT INTO " + table + " VALUES (1)")
		cancel()
		// database/sql refuses: the transaction's context is done (reported as that, or
		// as sql.ErrTxDone once its own rollback won the race).
		commit := "committed"
		if err := tx.Commit(); errors.Is(err, context.Canceled) || errors.Is(err, sql.ErrTxDone) {
			commit = "refused"
		} else if err != nil {
			commit = err.Error()
		}
		return fmt.Sprintf("insert=%s commit=%s rows=%d", errText(insErr), commit, countRows(t, table))
	})
}

// Options given to BeginTx reach the deferred BEGIN.
func TestTx_OptionsReachDeferredBegin(t *testing.T) {
	needServers(t)
	sideBySide(t, "iso=serializable ro=on write=error", func(t *testing.T, db *sql.DB, table string) string {
		tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		ctx, cancel := context.WithCancel(context.Background())
		var iso, ro string
		if err := tx.QueryRowContext(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &ro); err != nil {
			t.Fatal(err)
		}
		cancel()
		_, wErr := tx.Exec("INSERT INTO " + table + " VALUES (1)")
		return fmt.Sprintf("iso=%s ro=%s write=%s", iso, ro, errText(wErr))
	})
}

// The statement that opens the session may itself be cancelled while it waits;
// the transaction is then still usable and nothing ran outside it.
func TestTx_CancelledFirstStatementLeavesTransactionIntact(t *testing.T) {
	needServers(t)
	sideBySide(t, "first=context done insert=<nil> commit=<nil> rows=1", func(t *testing.T, db *sql.DB, table string) string {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, firstErr := tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES (99)")
		_, insErr := tx.Exec("INSERT INTO " + table + " VALUES (1)")
		commitErr := tx.Commit()
		return fmt.Sprintf("first=%s insert=%s commit=%s rows=%d", errText(firstErr), errText(insErr), errText(commitErr), countRows(t, table))
	})
}

// On a session already open, BEGIN goes out at BeginTx with every isolation level
// and access mode database/sql names, as pgx's driver sends it.
func TestTx_OptionsOnAnOpenSessionAsWithPgx(t *testing.T) {
	needServers(t)
	sideBySide(t, "default/false=read committed,off read-uncommitted/false=read uncommitted,off read-committed/false=read committed,off "+
		"repeatable-read/false=repeatable read,off snapshot/false=repeatable read,off serializable/false=serializable,off "+
		"default/true=read committed,on serializable/true=serializable,on linearizable=error",
		func(t *testing.T, db *sql.DB, table string) string {
			db.SetMaxOpenConns(1)
			if err := db.Ping(); err != nil { // the session is open before the first BeginTx
				t.Fatal(err)
			}
			var out []string
			for _, o := range []sql.TxOptions{
				{}, {Isolation: sql.LevelReadUncommitted}, {Isolation: sql.LevelReadCommitted},
				{Isolation: sql.LevelRepeatableRead}, {Isolation: sql.LevelSnapshot}, {Isolation: sql.LevelSerializable},
				{ReadOnly: true}, {Isolation: sql.LevelSerializable, ReadOnly: true},
			} {
				tx, err := db.BeginTx(context.Background(), &o)
				if err != nil {
					t.Fatal(err)
				}
				var iso, ro string
				if err := tx.QueryRow("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &ro); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				name := strings.ReplaceAll(strings.ToLower(o.Isolation.String()), " ", "-")
				out = append(out, fmt.Sprintf("%s/%v=%s,%s", name, o.ReadOnly, iso, ro))
			}
			_, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelLinearizable})
			return strings.Join(out, " ") + " linearizable=" + errText(err)
		})
}

// BeginTx on a session pgx has closed (here through sql.Conn.Raw) fails with
// driver.ErrBadConn, as pgx's driver fails, so that database/sql begins on another
// session (a pooled *sql.DB) and the closed one is not used again.
func TestTx_BeginOnASessionPgxClosedIsBadConn(t *testing.T) {
	needServers(t)
	sideBySide(t, "begin=bad conn valid-after=false pool=<nil>", func(t *testing.T, db *sql.DB, table string) string {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.Raw(func(dc any) error {
			return dc.(interface{ Conn() *pgx.Conn }).Conn().Close(context.Background())
		}); err != nil {
			t.Fatal(err)
		}
		_, beginErr := c.BeginTx(context.Background(), nil)
		begin := errText(beginErr)
		if errors.Is(beginErr, driver.ErrBadConn) {
			begin = "bad conn"
		}
		// database/sql has dropped the connection: its next use says so.
		valid := c.PingContext(context.Background()) == nil
		c.Close()
		// The pool begins on a new session.
		tx, err := db.Begin()
		if err == nil {
			_, err = tx.Exec("INSERT INTO " + table + " VALUES (1)")
			if cerr := tx.Commit(); err == nil {
				err = cerr
			}
		}
		return fmt.Sprintf("begin=%s valid-after=%v pool=%s", begin, valid, errText(err))
	})
}

// sql.Conn.Raw inside a transaction begun before the session opened sees the
// transaction, and the raw connection's work commits with it.
func TestTx_RawInsideDeferredTransaction(t *testing.T) {
	needServers(t)
	sideBySide(t, "intx=true commit=<nil> rows=1", func(t *testing.T, db *sql.DB, table string) string {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tx, err := c.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var inTx bool
		if err := c.Raw(func(dc any) error {
			pc := dc.(interface{ Conn() *pgx.Conn }).Conn()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if _, err := pc.Exec(ctx, "INSERT INTO "+table+" VALUES (1)"); err != nil {
				return err
			}
			inTx = pc.PgConn().TxStatus() == 'T'
			return nil
		}); err != nil {
			t.Fatalf("Raw: %v", err)
		}
		commitErr := tx.Commit()
		return fmt.Sprintf("intx=%v commit=%s rows=%d", inTx, errText(commitErr), countRows(t, table))
	})
}

// Ping and ResetSession on a fresh connection with a short context leave the
// connection usable after the context ends.
func TestConn_PingContextDoesNotOutliveItself(t *testing.T) {
	needServers(t)
	sideBySide(t, "ping=<nil> after=<nil> tx=<nil>", func(t *testing.T, db *sql.DB, table string) string {
		db.SetMaxOpenConns(1)
		ctx, cancel := context.WithCancel(context.Background())
		pingErr := db.PingContext(ctx)
		cancel()
		var one int
		afterErr := db.QueryRow("SELECT 1").Scan(&one)
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = tx.Exec("INSERT INTO " + table + " VALUES (1)")
		return fmt.Sprintf("ping=%s after=%s tx=%s", errText(pingErr), errText(afterErr), errText(tx.Commit()))
	})
}

// sql.Conn.Raw hands out *lakebase.Conn, whose Conn is the *pgx.Conn, as pgx's own
// driver hands out *stdlib.Conn.
func TestConn_RawGivesTheExportedConn(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthClientDSN())
	sc, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	err = sc.Raw(func(dc any) error {
		lc, ok := dc.(*lakebase.Conn)
		if !ok {
			return fmt.Errorf("Raw gave %T", dc)
		}
		var one int
		return lc.Conn().QueryRow(context.Background(), "SELECT 1").Scan(&one)
	})
	if err != nil {
		t.Fatal(err)
	}
}
