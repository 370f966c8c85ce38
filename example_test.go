package lakebase_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

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

// OpenDB applies the pool settings recommended for Lakebase: a cap on open
// sessions (DefaultPoolMaxSize unless PoolMaxSize says otherwise), kept idle up to it.
func ExampleOpenDB() {
	c, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		fmt.Println(err)
		return
	}
	db := lakebase.OpenDB(c)
	defer db.Close() // closes the connector too
	fmt.Println(db.Stats().MaxOpenConnections == lakebase.DefaultPoolMaxSize())
	// Output: true
}

// Login hands a fresh database login to another tool, such as psql.
func ExampleConnector_Login() {
	c, _ := lakebase.NewConnector(emu.OAuthClientDSN())
	defer c.Close()
	cr, err := c.Login(context.Background())
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

// A workspace token from any golang.org/x/oauth2 token source — here x/oauth2's own
// client credentials; in production perhaps the Databricks SDK's. The connection
// string names only the database.
func ExampleWithTokenSource() {
	ts := (&clientcredentials.Config{ClientID: emu.ServicePrincipal.ClientID, ClientSecret: emu.ServicePrincipal.ClientSecret,
		TokenURL: emu.URL + "/oidc/v1/token", Scopes: []string{"all-apis"}}).TokenSource(context.Background())

	// On Databricks: "DatabricksInstance=dbc-1234.cloud.databricks.com;Endpoint=projects/p/branches/main/endpoints/ep"
	c, err := lakebase.NewConnector(emu.DatabaseDSN(), lakebase.WithTokenSource(ts))
	if err != nil {
		fmt.Println(err)
		return
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	var user string
	db.QueryRow("SELECT current_user").Scan(&user)
	fmt.Println(user == emu.ServicePrincipal.ClientID)
	// Output: true
}

// The connector's workspace token, for other Go code calling Databricks REST APIs.
func ExampleConnector_TokenSource() {
	c, _ := lakebase.NewConnector(emu.OAuthClientDSN())
	defer c.Close()
	client := oauth2.NewClient(context.Background(), c.TokenSource())
	resp, err := client.Get(emu.URL + "/api/2.0/preview/scim/v2/Me")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// A person's web login in Go: AuthorizationURL when the browser arrives, ExchangeCode
// on the callback. Later connections log in as that person.
func ExampleConnector_AuthorizationURL() {
	emu.SetAutoApprove(true) // the emulator plays the person clicking Approve
	defer emu.SetAutoApprove(false)
	c, _ := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://example-go"))
	db := lakebase.OpenDB(c)
	defer db.Close()

	a, err := c.AuthorizationURL(context.Background(), lakebase.AuthorizationRequest{CallbackURL: "http://localhost:8020/callback"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// ... redirect the browser to a.URL (and keep a.State in a cookie); it comes back with code and state:
	resp, _ := noRedirectClient.Get(a.URL)
	resp.Body.Close()
	cb, _ := resp.Location()

	if _, err := c.ExchangeCode(context.Background(), lakebase.CodeExchange{Code: cb.Query().Get("code"), State: cb.Query().Get("state")}); err != nil {
		fmt.Println(err)
		return
	}
	var user string
	db.QueryRow("SELECT current_user").Scan(&user)
	fmt.Println("logged in as", user)
	// Output: logged in as ada@example.com
}

// Every session the connector opens gets a pgx tracer (otelpgx in a real service)
// and runs a setup step before first use.
func ExampleWithPgxConfig() {
	c, _ := lakebase.NewConnector(emu.OAuthClientDSN(),
		lakebase.WithPgxConfig(func(cc *pgx.ConnConfig) { cc.RuntimeParams["search_path"] = "public" }),
		lakebase.WithAfterConnect(func(ctx context.Context, pc *pgx.Conn) error {
			_, err := pc.Exec(ctx, "SET statement_timeout = '30s'")
			return err
		}))
	db := lakebase.OpenDB(c)
	defer db.Close()
	var path, timeout string
	db.QueryRow("SELECT current_setting('search_path'), current_setting('statement_timeout')").Scan(&path, &timeout)
	fmt.Println(path, timeout)
	// Output: public 30s
}
