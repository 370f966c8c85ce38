package lakebase_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lakebase-go/lakebase"
)

// A service principal logs in with client credentials; the driver mints database
// credentials and refreshes both by itself.
func ExampleNewConnector() {
	// On Databricks: "AuthScheme=OAuthClient;DatabricksInstance=dbc-1234.cloud.databricks.com;
	// Endpoint=projects/p/branches/main/endpoints/ep;OAuthClientId=...;OAuthClientSecret=..."
	dsn := emu.OAuthClientDSN()

	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		fmt.Println(err)
		return
	}
	db := lakebase.OpenDB(c) // sql.OpenDB with a 45-minute connection lifetime
	defer db.Close()

	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("SELECT 1 =", one)
	// Output: SELECT 1 = 1
}

// sql.Open takes the connection string directly.
func ExampleParseDSN() {
	cfg, err := lakebase.ParseDSN("Auth Scheme=OAuthClient; DatabricksInstance=dbc-1234.cloud.databricks.com;" +
		"Endpoint=projects/p/branches/main/endpoints/ep;OAuthClientId=sp-id;OAuthClientSecret='s;cret'")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.DatabricksInstance, cfg.InitiateOAuth, cfg.Database)
	fmt.Println(cfg.OAuthClientSecret == "s;cret", len(cfg.String()) > 0)
	// Output:
	// https://dbc-1234.cloud.databricks.com GETANDREFRESH databricks_postgres
	// true true
}

// A web app logs a person in with the virtual procedures: GetOAuthAuthorizationURL
// before sending the browser to the workspace, GetOAuthAccessToken on the callback.
func Example_procedures() {
	emu.SetAutoApprove(true) // the emulator plays the person clicking Approve
	defer emu.SetAutoApprove(false)
	db, _ := sql.Open("lakebase", emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://example"))
	defer db.Close()

	var authURL, state, verifier string
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL CallbackUrl='http://localhost:8020/callback'").Scan(&authURL, &state, &verifier); err != nil {
		fmt.Println(err)
		return
	}
	// ... redirect the browser to authURL; it comes back to the callback with code and state:
	resp, _ := noRedirectClient.Get(authURL)
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))

	var access, refresh sql.NullString
	var expiresIn int64
	err := db.QueryRow("EXEC GetOAuthAccessToken Verifier=?, State=?", cb.Query().Get("code"), cb.Query().Get("state")).
		Scan(&access, &refresh, &expiresIn)
	if err != nil {
		fmt.Println(err)
		return
	}
	var user string
	db.QueryRow("SELECT current_user").Scan(&user)
	fmt.Println("logged in as", user)
	// Output: logged in as ada@example.com
}

// pgx users without database/sql get the same pipeline through BeforeConnect.
func ExampleConnector_BeforeConnect() {
	c, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	cfg, _ := c.PoolConfig() // cfg.BeforeConnect = c.BeforeConnect
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	var n int
	pool.QueryRow(context.Background(), "SELECT count(*) FROM generate_series(1, 10)").Scan(&n)
	fmt.Println(n)
	// Output: 10
}

// Status reports who the connector logs in as and when its credential expires.
func ExampleConnector_Status() {
	c, _ := lakebase.NewConnector(emu.OAuthClientDSN())
	defer c.Close()
	st, err := c.Status(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.User == emu.ServicePrincipal.ClientID, st.Endpoint, !st.CredentialExpiry.IsZero())
	// Output: true projects/lakebase/branches/main/endpoints/primary true
}

// OpenDB applies the pool settings recommended for Lakebase.
func ExampleOpenDB() {
	c, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		fmt.Println(err)
		return
	}
	db := lakebase.OpenDB(c)
	defer db.Close() // closes the connector too
	fmt.Println(db.Stats().MaxOpenConnections == 0)
	// Output: true
}

// Credential hands a fresh login to another tool, such as psql.
func ExampleConnector_Credential() {
	c, _ := lakebase.NewConnector(emu.OAuthClientDSN())
	defer c.Close()
	cr, err := c.Credential(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cr.User == emu.ServicePrincipal.ClientID, cr.Password != "", !cr.Expiry.IsZero())
	fmt.Println(strings.Contains(fmt.Sprint(cr), cr.Password)) // String hides the password
	// Output:
	// true true true
	// false
}
