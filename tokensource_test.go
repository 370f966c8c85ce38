package lakebase_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// countingSource is a foreign oauth2.TokenSource (no TokenContext): the client
// credentials of x/oauth2 itself, counting calls.
type countingSource struct {
	ts    oauth2.TokenSource
	calls atomic.Int64
}

func (c *countingSource) Token() (*oauth2.Token, error) { c.calls.Add(1); return c.ts.Token() }

func spTokenSource(emu *lakebasetest.Server) *countingSource {
	cc := &clientcredentials.Config{ClientID: emu.ServicePrincipal.ClientID, ClientSecret: emu.ServicePrincipal.ClientSecret,
		TokenURL: emu.URL + "/oidc/v1/token", Scopes: []string{"all-apis"}}
	return &countingSource{ts: cc.TokenSource(context.Background())}
}

// WithTokenSource: the connection string names only the database; the caller's
// token source is the login, cached by the driver.
func TestWithTokenSource_LoginFromTheCallersToken(t *testing.T) {
	src := spTokenSource(emu)
	before := emu.Count(lakebasetest.EPCredAutoscaling)
	c, err := lakebase.NewConnector(emu.DatabaseDSN(), lakebase.WithTokenSource(src))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Config().AuthScheme; got != lakebase.AuthTokenSource {
		t.Fatalf("AuthScheme = %q", got)
	}
	for range 3 {
		l, err := c.Login(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if l.User != emu.ServicePrincipal.ClientID || l.Password == "" || l.Expiry.IsZero() {
			t.Fatalf("login %v", l)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("the token source was asked %d times, want 1 (cached)", n)
	}
	if n := emu.Count(lakebasetest.EPCredAutoscaling) - before; n != 1 {
		t.Fatalf("%d credentials minted, want 1", n)
	}
	if c.SettingsLocation() != "" {
		t.Fatalf("a token source stores nothing, yet SettingsLocation = %q", c.SettingsLocation())
	}
}

func TestWithTokenSource_QueriesThroughPostgres(t *testing.T) {
	needServers(t)
	c, err := lakebase.NewConnector(emu.DatabaseDSN(), lakebase.WithTokenSource(spTokenSource(emu)))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user = %q", u)
	}
}

func TestWithTokenSource_ConflictsAndErrors(t *testing.T) {
	if _, err := lakebase.NewConnector(emu.OAuthPKCEDSN(), lakebase.WithTokenSource(spTokenSource(emu))); !errors.Is(err, lakebase.ErrConfig) || !strings.Contains(err.Error(), "AuthScheme") {
		t.Fatalf("AuthScheme=OAuthPKCE with a token source: %v", err)
	}
	if _, err := lakebase.NewConnector(emu.DatabaseDSN("AuthScheme=TokenSource")); !errors.Is(err, lakebase.ErrConfig) || !strings.Contains(err.Error(), "WithTokenSource") {
		t.Fatalf("AuthScheme=TokenSource without one: %v", err)
	}
	// A source that fails: its error comes back, wrapped, from the login.
	boom := errors.New("the platform has no identity for this pod")
	c, err := lakebase.NewConnector(emu.DatabaseDSN(), lakebase.WithTokenSource(oauth2.TokenSource(failingSource{boom})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Login(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("login: %v", err)
	}
}

type failingSource struct{ err error }

func (f failingSource) Token() (*oauth2.Token, error) { return nil, f.err }

// Connector.TokenSource hands out the connector's own cached workspace token, good
// for the workspace's REST APIs.
func TestConnector_TokenSourceSharesTheCache(t *testing.T) {
	c, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := emu.Count(lakebasetest.EPToken)
	ts := c.TokenSource()
	t1, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := ts.Token()
	if t1.AccessToken == "" || t1.AccessToken != t2.AccessToken {
		t.Fatal("two calls gave different tokens")
	}
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := emu.Count(lakebasetest.EPToken) - before; n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	// Another Go client calls the workspace with it.
	resp, err := oauth2.NewClient(context.Background(), ts).Get(emu.URL + "/api/2.0/preview/scim/v2/Me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SCIM Me with the connector's token: HTTP %d", resp.StatusCode)
	}

	pw, err := lakebase.NewConnector("AuthScheme=Password;Server=localhost;User=u;Password=p")
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	if _, err := pw.TokenSource().Token(); !errors.Is(err, lakebase.ErrNoToken) {
		t.Fatalf("Password scheme: %v", err)
	}
}

// Schemes that keep nothing open no settings file: AzureMSI, AzureAD, DatabricksCLI,
// OIDCFederation, and a caller's token source.
func TestSchemesThatStoreNothing_OpenNoSettingsFile(t *testing.T) {
	cfgDir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgDir)
	t.Setenv("HOME", cfgDir)
	if err := emu.SetManagedIdentity(emu.ServicePrincipal.ClientID); err != nil {
		t.Fatal(err)
	}
	jwtFile := filepath.Join(t.TempDir(), "token.jwt")
	os.WriteFile(jwtFile, []byte("not.used.here"), 0o600)
	for name, dsn := range map[string]string{
		"AzureMSI":       emu.DatabaseDSN("AuthScheme=AzureMSI", "AzureMSIEndpoint="+emu.URL+"/metadata/identity/oauth2/token"),
		"AzureAD":        emu.DatabaseDSN("AuthScheme=AzureAD", "AzureTenant="+emu.AzureTenant, "AzureAuthorityHost="+emu.URL, "OAuthClientId=x", "OAuthClientSecret=y"),
		"DatabricksCLI":  emu.DatabaseDSN("AuthScheme=DatabricksCLI"),
		"OIDCFederation": emu.DatabaseDSN("AuthScheme=OIDCFederation", "OIDCTokenFile="+jwtFile),
	} {
		c, err := lakebase.NewConnector(dsn)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Login(context.Background()) // whether it succeeds does not matter here
		if loc := c.SettingsLocation(); loc != "" {
			t.Errorf("%s: SettingsLocation = %q", name, loc)
		}
		if err := c.Logout(context.Background()); err != nil {
			t.Errorf("%s: Logout: %v", name, err)
		}
		c.Close()
	}
	entries, _ := os.ReadDir(cfgDir)
	for _, e := range entries {
		t.Errorf("%s was created under the user config dir", e.Name())
	}
}

// The procedures and login steps are refused under schemes with no person to log
// in, with a message naming the scheme that has one.
func TestLoginSteps_RefusedWithoutAPerson(t *testing.T) {
	c, err := lakebase.NewConnector(emu.DatabaseDSN(), lakebase.WithTokenSource(spTokenSource(emu)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.AuthorizationURL(context.Background(), lakebase.AuthorizationRequest{}); !errors.Is(err, lakebase.ErrNoPersonLogin) {
		t.Fatalf("AuthorizationURL: %v", err)
	}
	if _, err := c.RefreshToken(context.Background(), "x"); !errors.Is(err, lakebase.ErrNoPersonLogin) {
		t.Fatalf("RefreshToken: %v", err)
	}
	db := sql.OpenDB(c)
	_, err = db.Exec("EXEC GetOAuthAuthorizationURL")
	if err == nil || !strings.Contains(err.Error(), "AuthScheme=OAuthPKCE or OAuthClient") || !strings.Contains(err.Error(), "TokenSource") {
		t.Fatalf("EXEC under a token source: %v", err)
	}
}

// Every error a procedure returns wraps what caused it: errors.Is and errors.As reach
// the login step's error.
func TestProcedures_ErrorsWrapTheirCause(t *testing.T) {
	c, err := lakebase.NewConnector(emu.DatabaseDSN(), lakebase.WithTokenSource(spTokenSource(emu)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := sql.OpenDB(c)
	defer db.Close()
	for _, q := range []string{"EXEC GetOAuthAuthorizationURL", "EXEC RefreshOAuthAccessToken OAuthRefreshToken='x'"} {
		if _, err := db.Exec(q); !errors.Is(err, lakebase.ErrNoPersonLogin) {
			t.Fatalf("%s: errors.Is(ErrNoPersonLogin) is false: %v", q, err)
		}
	}
	pkce, _ := newDB(t, emu.OAuthPKCEDSN("OAuthSettingsLocation=memory://"+t.Name()))
	_, err = pkce.Exec("EXEC GetOAuthAccessToken Verifier='not-a-code', State='no-such-state'")
	var ie *lakebase.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("an input error of the login step is not reachable: %v", err)
	}
}

// The three login steps as Go methods: a web login from URL to stored token.
func TestLoginSteps_WebLoginAndRefresh(t *testing.T) {
	emu.SetAutoApprove(true)
	defer emu.SetAutoApprove(false)
	loc := "memory://" + t.Name()
	c, err := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+loc))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.AuthorizationURL(context.Background(), lakebase.AuthorizationRequest{CallbackURL: "http://localhost:8020/cb"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(a.String(), a.PKCEVerifier) {
		t.Fatal("Authorization.String shows the verifier")
	}
	code, state := approve(t, a.URL)
	if state != a.State {
		t.Fatalf("state %q, want %q", state, a.State)
	}
	tok, err := c.ExchangeCode(context.Background(), lakebase.CodeExchange{Code: code, State: state})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatal("no tokens")
	}
	// The same code and state cannot be used twice.
	if _, err := c.ExchangeCode(context.Background(), lakebase.CodeExchange{Code: code, State: state}); err == nil {
		t.Fatal("a used state was accepted again")
	}
	// The stored login is the connector's: a login needs no person.
	l, err := c.Login(context.Background())
	if err != nil || l.User != emu.User.Email {
		t.Fatalf("login after ExchangeCode: %v %v", l, err)
	}
	nt, err := c.RefreshToken(context.Background(), tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if nt.RefreshToken == "" || nt.RefreshToken == tok.RefreshToken {
		t.Fatal("the refresh token did not rotate")
	}
	if _, err := c.RefreshToken(context.Background(), tok.RefreshToken); !errors.Is(err, lakebase.ErrReloginRequired) {
		t.Fatalf("reusing a rotated refresh token: %v", err)
	}
}

// approve plays the person approving the login in the browser and returns the code
// and state the callback would receive.
func approve(t *testing.T, authURL string) (code, state string) {
	t.Helper()
	resp, err := noRedirectClient.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("the authorize endpoint did not redirect: HTTP %d", resp.StatusCode)
	}
	return loc.Query().Get("code"), loc.Query().Get("state")
}

// WithPgxConfig and WithAfterConnect run on every new session, through database/sql
// and through the pgxpool helper; a hook cannot redirect the login.
func TestPgxHooks_EverySession(t *testing.T) {
	needServers(t)
	var configured, connected atomic.Int64
	c, err := lakebase.NewConnector(emu.OAuthClientDSN(),
		lakebase.WithPgxConfig(func(cc *pgx.ConnConfig) {
			configured.Add(1)
			cc.RuntimeParams["statement_timeout"] = "4321"
			cc.Host = "attacker.example" // overwritten by the login
		}),
		lakebase.WithAfterConnect(func(ctx context.Context, pc *pgx.Conn) error {
			connected.Add(1)
			_, err := pc.Exec(ctx, "SET lakebase_test.hook = 'ran'")
			return err
		}))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxIdleConns(0)
	for range 2 {
		var st, hook string
		if err := db.QueryRow("SELECT current_setting('statement_timeout'), current_setting('lakebase_test.hook')").Scan(&st, &hook); err != nil {
			t.Fatal(err)
		}
		if st != "4321ms" || hook != "ran" {
			t.Fatalf("statement_timeout %q, hook %q", st, hook)
		}
	}
	if configured.Load() != 2 || connected.Load() != 2 {
		t.Fatalf("hooks ran %d and %d times for 2 sessions", configured.Load(), connected.Load())
	}

	pool := poolOf(t, c)
	var hook string
	if err := pool.QueryRow(context.Background(), "SELECT current_setting('lakebase_test.hook')").Scan(&hook); err != nil || hook != "ran" {
		t.Fatalf("pool session: %q %v", hook, err)
	}

	// A failing AfterConnect hook fails the statement that opened the session.
	bad, _ := newDB(t, emu.OAuthClientDSN(), lakebase.WithAfterConnect(func(context.Context, *pgx.Conn) error {
		return errors.New("vector type not found")
	}))
	if _, err := bad.Exec("SELECT 1"); err == nil || !strings.Contains(err.Error(), "vector type not found") {
		t.Fatalf("failing hook: %v", err)
	}
}
