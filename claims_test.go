package lakebase_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/workspace"
)

// CredentialClaims parses to the typed form and back; bad forms are refused naming
// the property.
func TestCredentialClaims_ParseAndRefuse(t *testing.T) {
	cfg, err := lakebase.ParseDSN("AuthScheme=OAuthClient;DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b;" +
		"Endpoint=projects/p/branches/b/endpoints/e;CredentialClaims='READ_ONLY:main.sales.orders,main.sales.items'")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.CredentialClaims; c == nil || c.PermissionSet != "READ_ONLY" || len(c.Tables) != 2 || c.Tables[0] != "main.sales.orders" {
		t.Fatalf("parsed %+v", cfg.CredentialClaims)
	}
	back, err := lakebase.ParseDSN(cfg.FormatDSN())
	if err != nil || back.CredentialClaims.String() != "READ_ONLY:main.sales.items,main.sales.orders" {
		t.Fatalf("round trip: %v, %v", back, err)
	}
	for _, v := range []string{"READ_ONLY", "READ_ONLY:", "read only:main.s.t", "READ_ONLY:sales.orders", "READ_ONLY:a.b.c.d", "READ_ONLY:a.b.c;x"} {
		_, err := lakebase.ParseDSN("AuthScheme=OAuthClient;DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b;CredentialClaims='" + v + "'")
		var ce *lakebase.ConfigError
		if !errors.As(err, &ce) || ce.Property != "CredentialClaims" {
			t.Fatalf("CredentialClaims=%s: %v", v, err)
		}
	}
}

// A scoped credential against the emulator: every mint carries the claims (both
// APIs), the session is read-only and reads only the named tables; a scoped and an
// unscoped credential never mix in one settings store; the typed option wins.
func TestCredentialClaims_ScopedSessionsReadOnlyTheirTables(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	sp := `"` + e.ServicePrincipal.ClientID + `"`
	if err := e.Exec(`CREATE SCHEMA sales; CREATE TABLE sales.orders (id int); CREATE TABLE sales.items (id int); CREATE TABLE sales.salaries (id int);
		INSERT INTO sales.orders VALUES (1), (2); INSERT INTO sales.salaries VALUES (99);
		GRANT USAGE ON SCHEMA sales TO ` + sp + `; GRANT ALL ON ALL TABLES IN SCHEMA sales TO ` + sp); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	ctx := context.Background()
	scoped, c := newDB(t, e.OAuthClientDSN("OAuthSettingsLocation="+store, "CredentialClaims='READ_ONLY:main.sales.orders,main.sales.items'"))
	var n int
	if err := scoped.QueryRowContext(ctx, "SELECT count(*) FROM sales.orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("reading a named table: %d, %v", n, err)
	}
	var pe *pgconn.PgError
	if err := scoped.QueryRowContext(ctx, "SELECT count(*) FROM sales.salaries").Scan(&n); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("reading a table the claims do not name: %v", err)
	}
	if _, err := scoped.ExecContext(ctx, "INSERT INTO sales.orders VALUES (3)"); !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("writing with a READ_ONLY credential: %v", err)
	}
	li, err := c.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc := e.CredentialScopeOf(li.Password); sc == nil || sc.PermissionSet != "READ_ONLY" || strings.Join(sc.Tables, ",") != "main.sales.items,main.sales.orders" {
		t.Fatalf("the minted credential's scope: %+v", sc)
	}

	// The unscoped connector on the same store mints its own and may write.
	before := e.Count(lakebasetest.EPCredAutoscaling)
	plain, pc := newDB(t, e.OAuthClientDSN("OAuthSettingsLocation="+store))
	if _, err := plain.ExecContext(ctx, "INSERT INTO sales.orders VALUES (3)"); err != nil {
		t.Fatalf("the unscoped credential: %v", err)
	}
	if e.Count(lakebasetest.EPCredAutoscaling) == before {
		t.Fatal("the unscoped connector took the scoped credential from the store")
	}
	pli, _ := pc.Login(ctx)
	if e.CredentialScopeOf(pli.Password) != nil {
		t.Fatal("the unscoped credential has a scope")
	}

	// The typed option, and the Provisioned API.
	typed, tc := newDB(t, e.OAuthClientDSN("Endpoint=", "Instance="+e.Instance, "CredentialClaims='READ_ONLY:main.sales.items'"),
		lakebase.WithCredentialClaims(workspace.CredentialClaims{PermissionSet: workspace.PermissionReadOnly, Tables: []string{"main.sales.orders"}}))
	if err := typed.QueryRowContext(ctx, "SELECT count(*) FROM sales.orders").Scan(&n); err != nil {
		t.Fatalf("the typed option's table: %v", err)
	}
	tli, _ := tc.Login(ctx)
	if sc := e.CredentialScopeOf(tli.Password); sc == nil || strings.Join(sc.Tables, ",") != "main.sales.orders" {
		t.Fatalf("the Provisioned credential's scope: %+v", sc)
	}
	if _, err := lakebase.NewConnector(e.OAuthClientDSN(), lakebase.WithCredentialClaims(workspace.CredentialClaims{PermissionSet: "READ_ONLY"})); err == nil {
		t.Fatal("claims without tables were taken")
	}
}

// A READ_ONLY scoped session is logged in as a role that may only read the named
// tables: whatever it sets (SET ROLE NONE, SET SESSION AUTHORIZATION, RESET ALL,
// default_transaction_read_only = off, SET TRANSACTION READ WRITE), a write fails
// with a permission (42501) or read-only (25006) error, on the direct host and on
// the pooled host and on their read-only hosts, and nothing is written.
func TestCredentialClaims_ReadOnlySessionCannotWriteAfterAnySET(t *testing.T) {
	needServers(t)
	e := pooledEmulator(t, lakebasetest.Options{})
	sp := pgx.Identifier{e.ServicePrincipal.ClientID}.Sanitize()
	if err := e.Exec(`CREATE SCHEMA sales; CREATE TABLE sales.orders (id int); INSERT INTO sales.orders VALUES (1);
		GRANT USAGE, CREATE ON SCHEMA sales TO ` + sp + `; GRANT ALL ON ALL TABLES IN SCHEMA sales TO ` + sp); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	claims := "CredentialClaims='READ_ONLY:main.sales.orders'"
	// What a session may try before writing: each list runs in order, errors of the
	// SETs themselves ignored (a refused SET is the scope holding too).
	forged := [][]string{
		{"SET ROLE NONE", "SET default_transaction_read_only = off"},
		{"RESET ROLE", "RESET ALL", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"},
		{"SET SESSION AUTHORIZATION DEFAULT", "SET default_transaction_read_only = off"},
		{"SET SESSION AUTHORIZATION " + sp, "SET ROLE " + sp, "SET default_transaction_read_only = off"},
		{"SET ROLE postgres", "SET default_transaction_read_only = off"},
	}
	writes := []string{"INSERT INTO sales.orders VALUES (2)", "UPDATE sales.orders SET id = 3", "DELETE FROM sales.orders",
		"CREATE TABLE sales.stolen (id int)", "TRUNCATE sales.orders"}
	refused := func(t *testing.T, what string, err error) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "25006") {
			t.Fatalf("%s: %v, want a permission (42501) or read-only (25006) error", what, err)
		}
	}
	for name, dsn := range map[string]string{
		"direct":           e.OAuthClientDSN(claims),
		"pooled":           e.OAuthClientDSN(claims, "Pooled=true"),
		"read-only direct": e.OAuthClientDSN(claims, "ReadOnly=true"),
		"read-only pooled": e.OAuthClientDSN(claims, "ReadOnly=true", "Pooled=true"),
	} {
		t.Run(name, func(t *testing.T) {
			db, _ := newDB(t, dsn)
			var n int
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sales.orders").Scan(&n); err != nil || n != 1 {
				t.Fatalf("reading the named table: %d, %v", n, err)
			}
			for _, sets := range forged {
				for _, w := range writes {
					if !strings.Contains(name, "pooled") {
						// Session-level settings on one session, then the write.
						conn, err := db.Conn(ctx)
						if err != nil {
							t.Fatal(err)
						}
						for _, s := range sets {
							conn.ExecContext(ctx, s)
						}
						_, err = conn.ExecContext(ctx, w)
						refused(t, strings.Join(sets, "; ")+"; "+w, err)
						conn.Raw(func(any) error { return driver.ErrBadConn }) // never back to the pool
						conn.Close()
					}
					// In one transaction (what a pooled session keeps): READ WRITE first.
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, "SET TRANSACTION READ WRITE"); err != nil {
						// A replica refuses it: "cannot set transaction read-write mode during recovery".
						var pe *pgconn.PgError
						if !strings.HasPrefix(name, "read-only") || !errors.As(err, &pe) || pe.Code != "0A000" {
							t.Fatalf("SET TRANSACTION READ WRITE: %v", err)
						}
						tx.Rollback()
						if tx, err = db.BeginTx(ctx, nil); err != nil {
							t.Fatal(err)
						}
					}
					for _, s := range sets {
						local := strings.Replace(strings.Replace(s, "SET ", "SET LOCAL ", 1), "SET LOCAL SESSION CHARACTERISTICS", "SET SESSION CHARACTERISTICS", 1)
						if _, err := tx.ExecContext(ctx, "SAVEPOINT s"); err != nil {
							t.Fatal(err)
						}
						if _, err := tx.ExecContext(ctx, local); err != nil {
							tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT s")
						}
					}
					_, err = tx.ExecContext(ctx, w)
					tx.Rollback()
					refused(t, "BEGIN; SET TRANSACTION READ WRITE; "+strings.Join(sets, "; ")+"; "+w, err)
				}
			}
		})
	}
	// Nothing was written: an unscoped session sees the one row and no new table.
	plain, _ := newDB(t, e.OAuthClientDSN())
	var n int
	if err := plain.QueryRowContext(ctx, "SELECT count(*) FROM sales.orders WHERE id = 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the table after the attempts: %d rows of the original, %v", n, err)
	}
	var stolen *string
	if err := plain.QueryRowContext(ctx, "SELECT to_regclass('sales.stolen')::text").Scan(&stolen); err != nil || stolen != nil {
		t.Fatalf("a table was created: %v, %v", stolen, err)
	}
	if err := plain.QueryRowContext(ctx, "SELECT count(*) FROM sales.orders").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the table holds %d rows (%v), want 1", n, err)
	}
}
