package lakebase_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgx's five exec modes reach pgx: after DDL changes a table's columns, a plan cached
// by cache_statement fails once with 0A000 ("cached plan must not change result
// type"), the other modes do not, through pgx and through lakebase alike.
func TestQueryExecMode_SameAsPgxAfterDDL(t *testing.T) {
	needServers(t)
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			got := map[string]string{}
			for _, name := range []string{"pgx", "lakebase"} {
				var db *sql.DB
				if name == "pgx" {
					db = pgxStdlibDB(t, "default_query_exec_mode="+mode)
				} else {
					db = openDB(t, passwordDSN("QueryExecMode="+mode))
				}
				db.SetMaxOpenConns(1)
				table := fmt.Sprintf("execmode_%s_%s", mode, name)
				if _, err := db.Exec("DROP TABLE IF EXISTS " + table + "; CREATE TABLE " + table + " (a int)"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { pgxStdlibDB(t, "").Exec("DROP TABLE " + table) })
				query := func() string {
					rows, err := db.Query("SELECT * FROM "+table+" WHERE a > $1", 0)
					if err != nil {
						var pe *pgconn.PgError
						if errors.As(err, &pe) {
							return pe.Code
						}
						return "error"
					}
					cols, _ := rows.Columns()
					rows.Close()
					return fmt.Sprint(len(cols))
				}
				first := query()
				if _, err := db.Exec("ALTER TABLE " + table + " ADD COLUMN b text"); err != nil {
					t.Fatal(err)
				}
				second := query()
				third := query()
				got[name] = first + " " + second + " " + third
				db.Close()
			}
			if got["pgx"] != got["lakebase"] {
				t.Fatalf("pgx %q, lakebase %q", got["pgx"], got["lakebase"])
			}
			want := "1 2 2"
			if mode == "cache_statement" {
				want = "1 0A000 2"
			}
			if got["lakebase"] != want {
				t.Fatalf("got %q, want %q", got["lakebase"], want)
			}
		})
	}
}

// AllowPreparedStatement=false: no statement is ever prepared on the server, not even
// by database/sql's Prepare; the default prepares (and caches) as pgx does.
func TestAllowPreparedStatementFalse_NothingPreparedOnTheServer(t *testing.T) {
	needServers(t)
	for _, tc := range []struct {
		extra    string
		prepared bool
	}{{"", true}, {"AllowPreparedStatement=false", false}, {"AllowPreparedStatement=false;QueryExecMode=simple_protocol", false}} {
		db := openDB(t, passwordDSN(tc.extra))
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		st, err := conn.PrepareContext(context.Background(), "SELECT $1::int + 1")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for i := range 3 {
			if err := st.QueryRow(i).Scan(&n); err != nil || n != i+1 {
				t.Fatalf("%q: %v %d", tc.extra, err, n)
			}
		}
		if err := conn.QueryRowContext(context.Background(), "SELECT $1::int", 7).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var count int
		conn.QueryRowContext(context.Background(), "SELECT count(*) FROM pg_prepared_statements").Scan(&count)
		if (count > 0) != tc.prepared {
			t.Fatalf("%q: %d statements prepared on the server", tc.extra, count)
		}
		st.Close()
		conn.Close()
	}
}
