package lakebase

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/cache"
	"github.com/lakebase-go/lakebase/internal/pipeline"
)

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

// opened reports whether c was made by NewConnector or NewConnectorFromConfig.
func (c *Connector) opened() bool { return c != nil && c.cfg != nil }

// login returns where and as whom the next session logs in, and the password: the
// token pipeline's, or AuthScheme=Password's native one. refused, when set, is a
// password the server just refused: it is not handed out again.
func (c *Connector) login(ctx context.Context, refused string) (loginInfo, error) {
	switch {
	case !c.opened():
		return loginInfo{}, ErrConnectorNotOpened
	case c.pipe == nil:
		cfg := c.cfg
		return loginInfo{host: cfg.Server, port: cfg.Port, user: cfg.User, password: cfg.Password, pooled: cfg.Pooled}, nil
	}
	pl, err := c.pipe.Login(ctx, refused)
	return loginInfo{host: pl.Host, port: pl.Port, user: pl.User, password: pl.Password, expiry: pl.Expiry, retryable: true,
		database: pl.Database, state: pl.State, pooled: c.cfg.Pooled, storedHost: pl.StoredHost}, err
}

// pipeline is the connector's token pipeline: nil for AuthScheme=Password and for
// a Connector that was never opened.
func (c *Connector) pipeline() *pipeline.Pipeline {
	if !c.opened() {
		return nil
	}
	return c.pipe
}

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
func (c *Connector) TokenSource() oauth2.TokenSource {
	if p := c.pipeline(); p != nil {
		return p.TokenSource()
	}
	return noTokens{}
}

// ForgetCredential drops the cached database credential, so the next connect mints a
// fresh one. pgxpool users call it when a connect fails with SQLSTATE 28P01/28000;
// database/sql users never need it (the driver retries by itself).
func (c *Connector) ForgetCredential() {
	if p := c.pipeline(); p != nil {
		p.ForgetCredential()
	}
}

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
func (c *Connector) TokenStats() TokenStats {
	if p := c.pipeline(); p != nil {
		ws, cred := p.Stats()
		return TokenStats{WorkspaceToken: ws, Credential: cred}
	}
	return TokenStats{}
}

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
	li, err := c.login(ctx, "")
	if err != nil {
		return Status{}, err
	}
	s := Status{AuthScheme: c.cfg.AuthScheme, Workspace: c.cfg.DatabricksInstance, User: li.user, Host: li.host,
		Port: li.port, Database: c.cfg.Database}
	if p := c.pipeline(); p != nil {
		s.TokenExpiry, s.CredentialExpiry, s.Endpoint, s.Instance = p.Describe()
	}
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
	li, err := c.login(ctx, "")
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
func (c *Connector) Logout(ctx context.Context) error {
	if !c.opened() {
		return ErrConnectorNotOpened
	}
	if c.pipe == nil {
		return nil
	}
	return c.pipe.Logout(ctx)
}

// HasStoredLogin reports whether OAuthSettingsLocation holds a login (tokens) for the
// connector's workspace, client and scope. Schemes that store nothing report false.
func (c *Connector) HasStoredLogin(ctx context.Context) (bool, error) {
	if !c.opened() {
		return false, ErrConnectorNotOpened
	}
	if c.pipe == nil {
		return false, nil
	}
	return c.pipe.HasStoredLogin(ctx)
}

// SettingsLocation returns where the connector stores tokens ("" when nowhere).
func (c *Connector) SettingsLocation() string {
	if p := c.pipeline(); p != nil {
		return p.SettingsLocation()
	}
	return ""
}
