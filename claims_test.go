package lakebase_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

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
