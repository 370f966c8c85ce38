package lakebase

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/cache"
)

// loginSource is where the login of a new Postgres session comes from: a fixed
// password, or a token pipeline (workspace token → database credential). The
// connector needs nothing else of it.
type loginSource interface {
	// login returns where and as whom to log in, and the password. refused, when
	// set, is a password the server just refused: it must not be handed out again.
	login(ctx context.Context, refused string) (loginInfo, error)
	// forgetCredential drops a cached database credential.
	forgetCredential()
	// describe fills in what Status reports beyond the login itself.
	describe(s *Status)
	// logout drops cached tokens and removes stored ones.
	logout(ctx context.Context) error
	// hasStoredLogin reports whether a login is stored for this connection.
	hasStoredLogin(ctx context.Context) (bool, error)
	// settingsLocation is where tokens are stored ("" when nowhere).
	settingsLocation() string
	stats() TokenStats
	// tokenSource is the workspace token, for other Go code.
	tokenSource() oauth2.TokenSource
	close()
}

// loginInfo is one login: where, as whom, with which password.
type loginInfo struct {
	host      string
	port      int
	user      string
	password  string
	expiry    time.Time // of the password; zero for a native password
	retryable bool      // a refused login is worth one retry with a fresh credential
	pooled    bool      // host is a pooled host (PgBouncer in transaction mode)
	// database names the Lakebase endpoint or instance ("" for a native password):
	// its connects are retried while it wakes from scale-to-zero; state is its state
	// when looked up.
	database, state string
	// storedHost: host was read back from the settings store (SSLMode=verify-full);
	// a connect that fails before a password is sent drops it and looks it up again.
	storedHost bool
}

// splitHostPort splits a host the workspace reported with a port ("host:port", as
// the emulator's pooled host is) into both; any other host keeps port.
func splitHostPort(host string, port int) (string, int) {
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		return host, port
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return host, port
	}
	return h, n
}

// source is the connector's login, or one that refuses everything for a Connector
// that was never opened.
func (c *Connector) source() loginSource {
	if c == nil || c.login == nil {
		return unopenedLogin{}
	}
	return c.login
}

// unopenedLogin is the login of a zero Connector: every call fails clearly.
type unopenedLogin struct{}

func (unopenedLogin) login(context.Context, string) (loginInfo, error) {
	return loginInfo{}, ErrConnectorNotOpened
}
func (unopenedLogin) forgetCredential()            {}
func (unopenedLogin) describe(*Status)             {}
func (unopenedLogin) logout(context.Context) error { return ErrConnectorNotOpened }
func (unopenedLogin) hasStoredLogin(context.Context) (bool, error) {
	return false, ErrConnectorNotOpened
}
func (unopenedLogin) settingsLocation() string        { return "" }
func (unopenedLogin) stats() TokenStats               { return TokenStats{} }
func (unopenedLogin) tokenSource() oauth2.TokenSource { return noTokens{} }
func (unopenedLogin) close()                          {}

// passwordLogin is AuthScheme=Password: a native Postgres password.
type passwordLogin struct{ cfg *Config }

func (a *passwordLogin) login(context.Context, string) (loginInfo, error) {
	return loginInfo{host: a.cfg.Server, port: a.cfg.Port, user: a.cfg.User, password: a.cfg.Password, pooled: a.cfg.Pooled}, nil
}
func (a *passwordLogin) forgetCredential()                            {}
func (a *passwordLogin) describe(*Status)                             {}
func (a *passwordLogin) logout(context.Context) error                 { return nil }
func (a *passwordLogin) hasStoredLogin(context.Context) (bool, error) { return false, nil }
func (a *passwordLogin) settingsLocation() string                     { return "" }
func (a *passwordLogin) stats() TokenStats                            { return TokenStats{} }
func (a *passwordLogin) tokenSource() oauth2.TokenSource              { return noTokens{} }
func (a *passwordLogin) close()                                       {}

// noTokens is the TokenSource of AuthScheme=Password.
type noTokens struct{}

func (noTokens) Token() (*oauth2.Token, error) {
	return nil, fmt.Errorf("%w: AuthScheme=Password logs in with a native password and has no workspace token", ErrNoToken)
}

// TokenSource returns the connector's workspace OAuth token as an
// oauth2.TokenSource, for other Go code that calls Databricks REST APIs with the same
// login (for example as the token of a Databricks SDK client). It shares the
// connector's cache: no extra token request is made while the token is fresh, and it
// is refreshed ahead of expiry. Under AuthScheme=Password its Token returns
// ErrNoToken. It also has TokenContext(ctx) for a bounded wait.
func (c *Connector) TokenSource() oauth2.TokenSource { return c.source().tokenSource() }

// ForgetCredential drops the cached database credential, so the next connect mints a
// fresh one. pgxpool users call it when a connect fails with SQLSTATE 28P01/28000;
// database/sql users never need it (the driver retries by itself).
func (c *Connector) ForgetCredential() { c.source().forgetCredential() }

// CacheStats counts what one of the connector's caches did: fetches, refreshes
// ahead of expiry, callers that waited for a fetch, and stalls (waits after the
// first value).
type CacheStats = cache.CacheStats

// TokenStats counts what the token pipeline did.
type TokenStats struct {
	WorkspaceToken CacheStats
	Credential     CacheStats
}

// TokenStats returns the token pipeline's counters (zero for AuthScheme=Password).
func (c *Connector) TokenStats() TokenStats { return c.source().stats() }

// Status describes the login the connector would make now. It holds no secret.
type Status struct {
	AuthScheme       AuthScheme
	Workspace        string
	User             string // the Postgres role
	Host             string
	Port             int
	Database         string
	Endpoint         string    // Autoscaling endpoint, if any
	Instance         string    // Provisioned instance, if any
	TokenExpiry      time.Time // of the workspace token (zero: never, or Password)
	CredentialExpiry time.Time // of the database credential (zero for Password)
}

// Status runs the token pipeline (fetching what is not cached) and reports who the
// connector logs in as, where, and until when its token and credential are valid.
func (c *Connector) Status(ctx context.Context) (Status, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	li, err := c.source().login(ctx, "")
	if err != nil {
		return Status{}, err
	}
	s := Status{AuthScheme: c.cfg.AuthScheme, Workspace: c.cfg.DatabricksInstance, User: li.user, Host: li.host,
		Port: li.port, Database: c.cfg.Database}
	c.source().describe(&s)
	return s, nil
}

// Login is a database login, as psql and other tools need it. Its String and fmt
// forms hide the password.
type Login struct {
	Host     string
	Port     int
	Database string
	User     string
	Password string    // the database credential (or the native password)
	Expiry   time.Time // zero for a native password
}

// String hides the password.
func (l Login) String() string {
	return fmt.Sprintf("lakebase.Login{%s@%s:%d/%s, expiry %s}", l.User, l.Host, l.Port, l.Database, l.Expiry.Format(time.RFC3339))
}

// Format hides the password for every fmt verb.
func (l Login) Format(f fmt.State, _ rune) { fmt.Fprint(f, l.String()) }

// Login runs the token pipeline and returns a database login for another tool (psql,
// a migration runner in another language). Treat Password as a secret. With
// SSLMode=verify-full, Host may be the one kept in the settings store (no request
// is made for it; see docs/security.md): connect to it with verify-full too, so the
// certificate proves the name before the password is sent. With require, Host is
// the workspace's answer in this process.
func (c *Connector) Login(ctx context.Context) (Login, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	li, err := c.source().login(ctx, "")
	if err != nil {
		return Login{}, err
	}
	return Login{Host: li.host, Port: li.port, Database: c.cfg.Database, User: li.user, Password: li.password, Expiry: li.expiry}, nil
}

// Logout removes the connector's stored login (from OAuthSettingsLocation: the
// tokens of its workspace, client and scope, and the credentials, user name and
// host lookups kept with them), whatever InitiateOAuth says, and drops its cached
// token and credential. Logging out when nothing is stored is not an error;
// HasStoredLogin tells the two apart.
func (c *Connector) Logout(ctx context.Context) error { return c.source().logout(ctx) }

// HasStoredLogin reports whether OAuthSettingsLocation holds a login (tokens) for the
// connector's workspace, client and scope. Schemes that store nothing report false.
func (c *Connector) HasStoredLogin(ctx context.Context) (bool, error) {
	return c.source().hasStoredLogin(ctx)
}

// SettingsLocation returns where the connector stores tokens ("" when nowhere).
func (c *Connector) SettingsLocation() string { return c.source().settingsLocation() }

type credentialError struct{ err error }

func (e *credentialError) Error() string        { return e.err.Error() }
func (e *credentialError) Unwrap() error        { return e.err }
func (e *credentialError) Is(target error) bool { return target == ErrCredential }
