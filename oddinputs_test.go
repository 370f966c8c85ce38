package lakebase_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase"
)

// Odd inputs to the exported API are errors, never panics or silent changes.
func TestExportedAPI_OddInputsAreErrors(t *testing.T) {
	c, err := lakebase.NewConnector(emu.OAuthClientDSN(), nil)
	if err != nil {
		t.Fatalf("NewConnector with a nil Option: %v", err)
	}
	c.Close()

	var zero lakebase.Connector
	if _, err := zero.Login(context.Background()); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Login on a zero Connector: %v", err)
	}
	if _, err := zero.Status(context.Background()); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Status on a zero Connector: %v", err)
	}
	if err := zero.Logout(context.Background()); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Logout on a zero Connector: %v", err)
	}
	if _, err := zero.PoolConfig(); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("PoolConfig on a zero Connector: %v", err)
	}
	if err := sql.OpenDB(&zero).Ping(); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Ping through a zero Connector: %v", err)
	}
	zero.Close()

	for _, port := range []int{70000, -1, 65536} {
		cfg := &lakebase.Config{AuthScheme: lakebase.AuthPassword, Server: "localhost", User: "u", Password: "p", Port: port}
		if _, err := lakebase.NewConnectorFromConfig(cfg); !errors.Is(err, lakebase.ErrConfig) {
			t.Fatalf("Config{Port: %d}: %v", port, err)
		}
	}
}

// A permanent mistake is not retried until Timeout: https against the emulator's
// plain-http port fails at once, saying to write http://.
func TestConnect_HTTPSAgainstAnHTTPServerFailsAtOnceWithAHint(t *testing.T) {
	host := strings.TrimPrefix(emu.URL, "http://")
	dsn := strings.Replace(emu.OAuthClientDSN("Timeout=120"), "DatabricksInstance="+emu.URL, "DatabricksInstance="+host, 1)
	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "write http://") || strings.Contains(err.Error(), "within Timeout") {
		t.Fatalf("https against an http server: %v", err)
	}
}

// A refused OAuthAccessToken under InitiateOAuth=OFF is reported as what it is: the
// token was refused and nothing renews it.
func TestInitiateOAuthOff_RefusedTokenSaysNothingRenewsIt(t *testing.T) {
	tok := m2mAccessToken(t)
	emu.Revoke(tok)
	c, err := lakebase.NewConnector(emu.OAuthClientDSN("InitiateOAuth=OFF", "OAuthAccessToken="+tok))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "never renews it") || strings.Contains(err.Error(), "may lack permission") {
		t.Fatalf("a refused OAuthAccessToken under OFF: %v", err)
	}
}

// A missing database names every way to name another one.
func TestConnect_MissingDatabaseHintNamesEveryWayToNameADatabase(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthClientDSN("Database=no_such_db_here"))
	err := db.Ping()
	for _, want := range []string{"Endpoint", "Instance", "Project", "Branch", "LAKEBASE_ENDPOINT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("missing database: %v (no %s)", err, want)
		}
	}
}

// verify-full without SSLServerCert, against a server whose CA is not a system root,
// says to set SSLServerCert (as lakebase status does), not a bare x509 error.
func TestConnect_UnverifiedCertificateSaysSetSSLServerCert(t *testing.T) {
	needServers(t)
	dsn := strings.Replace(emu.OAuthClientDSN(), "SSLServerCert="+emu.CAFile, "SSLServerCert=", 1)
	db, _ := newDB(t, dsn)
	err := db.Ping()
	if err == nil || !strings.Contains(err.Error(), "set SSLServerCert") {
		t.Fatalf("verify-full without SSLServerCert: %v", err)
	}
}

// InitiateOAuth=OFF with no OAuthAccessToken while a login is stored says so and
// names InitiateOAuth=REFRESH.
func TestInitiateOAuthOff_WithAStoredLoginNamesREFRESH(t *testing.T) {
	store := "memory://" + t.Name()
	c, _ := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+store, "OAuthRefreshToken="+userRefreshToken(t)))
	if _, err := c.TokenSource().Token(); err != nil { // the login is stored
		t.Fatal(err)
	}
	c.Close()
	off, err := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=OFF", "OAuthSettingsLocation="+store))
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	_, err = off.TokenSource().Token()
	if !errors.Is(err, lakebase.ErrNoToken) || !strings.Contains(err.Error(), "a login is stored") || !strings.Contains(err.Error(), "InitiateOAuth=REFRESH") {
		t.Fatalf("OFF with a stored login: %v", err)
	}
}

// A workspace host that does not exist (a typo in DatabricksInstance) or refuses
// connections (a wrong port) is a permanent mistake: the login fails at once with
// an error naming DatabricksInstance, after one try of each request, never retried
// until Timeout.
func TestConnect_UnknownOrRefusingWorkspaceHostFailsAtOnceNamingDatabricksInstance(t *testing.T) {
	for name, tc := range map[string]struct {
		instance, says string
		tokens         bool // a token source of the caller's: the first request is a workspace API's
	}{
		"no such host":                      {"dbc-typo.invalid", "no such host", false},
		"connection refused":                {"http://127.0.0.1:" + closedPort(t), "refused", false},
		"no such host, workspace API":       {"dbc-typo.invalid", "no such host", true},
		"connection refused, workspace API": {"http://127.0.0.1:" + closedPort(t), "refused", true},
	} {
		t.Run(name, func(t *testing.T) {
			dsn := emu.OAuthClientDSN()
			tr := &countingTransport{}
			opts := []lakebase.Option{lakebase.WithHTTPClient(&http.Client{Transport: tr})}
			if tc.tokens {
				dsn = emu.DatabaseDSN()
				opts = append(opts, lakebase.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "a-workspace-token"})))
			}
			dsn = strings.Replace(dsn, "DatabricksInstance="+emu.URL, "DatabricksInstance="+tc.instance, 1)
			c, err := lakebase.NewConnector(dsn, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Login(context.Background())
			if err == nil || !strings.Contains(err.Error(), "DatabricksInstance") || !strings.Contains(err.Error(), tc.says) ||
				strings.Contains(err.Error(), "within Timeout") || lakebase.Retryable(err) {
				t.Fatalf("workspace host %s: %v", tc.instance, err)
			}
			if strings.Contains(err.Error(), emu.ServicePrincipal.ClientSecret) || strings.Contains(err.Error(), "a-workspace-token") {
				t.Fatal("the error holds the client secret")
			}
			// One try of each request the login makes before it fails (the OIDC
			// discovery; or the credential, the endpoint and the user name, asked in
			// one wave): no retries.
			if n := tr.n.Load(); n > 3 {
				t.Fatalf("%d requests to a host that cannot answer, want no retries", n)
			}
		})
	}
}
