package lakebase

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lakebase-go/lakebase/oauth"
)

// BeforeConnect is a hook for pgx's BeforeConnect (pgxpool.Config.BeforeConnect,
// or stdlib.OptionBeforeConnect): it runs the connector's token pipeline and sets the
// host, port, user, password and TLS policy of the connection about to be opened.
//
// Unlike the database/sql path, a pgx pool cannot retry a refused login within one
// connect: when a connect fails with SQLSTATE 28P01 or 28000, call ForgetCredential
// and the pool's next connect mints a fresh credential.
func (c *Connector) BeforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	li, err := c.auth.login(ctx, "")
	if err != nil {
		return err
	}
	cc.Host, cc.Port, cc.User, cc.Password = li.host, uint16(li.port), li.user, li.password
	return c.cfg.applyTLS(&cc.Config, li.host, c.roots)
}

// ForgetCredential drops the cached database credential, so the next connect mints a
// fresh one. pgxpool users call it when a connect fails with SQLSTATE 28P01/28000;
// database/sql users never need it (the driver retries by itself).
func (c *Connector) ForgetCredential() {
	if a, ok := c.auth.(*oauthAuth); ok {
		a.cred.Invalidate(nil)
	}
}

// PoolConfig returns a pgxpool configuration whose connections log in through this
// connector (BeforeConnect), with the same database, TLS policy and application name,
// and a max connection lifetime of 45 minutes as Databricks recommends. Close the
// pool before the connector.
func (c *Connector) PoolConfig() (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("lakebase: building the pool configuration: %w", err)
	}
	base := c.base.Copy()
	pc.ConnConfig = base
	pc.BeforeConnect = c.BeforeConnect
	pc.MaxConnLifetime = DefaultConnMaxLifetime
	return pc, nil
}

// TokenStats counts what the token pipeline did.
type TokenStats struct {
	WorkspaceToken oauth.CacheStats
	Credential     oauth.CacheStats
}

// TokenStats returns the token pipeline's counters (zero for AuthScheme=Password).
func (c *Connector) TokenStats() TokenStats {
	a, ok := c.auth.(*oauthAuth)
	if !ok {
		return TokenStats{}
	}
	return TokenStats{WorkspaceToken: a.ws.Stats(), Credential: a.cred.Stats()}
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
	li, err := c.auth.login(ctx, "")
	if err != nil {
		return Status{}, err
	}
	s := Status{AuthScheme: c.cfg.AuthScheme, Workspace: c.cfg.DatabricksInstance, User: li.user, Host: li.host,
		Port: li.port, Database: c.cfg.Database}
	if a, ok := c.auth.(*oauthAuth); ok {
		if t, _, ok := a.ws.Peek(); ok {
			s.TokenExpiry = t.Expiry
		}
		if _, exp, ok := a.cred.Peek(); ok {
			s.CredentialExpiry = exp
		}
		if t, err := a.resolveTarget(ctx); err == nil {
			s.Endpoint, s.Instance = t.endpoint, t.instance
		}
	}
	return s, nil
}

// Credential is a database login, as psql and other tools need it. Its String and
// fmt forms hide the password.
type Credential struct {
	Host     string
	Port     int
	Database string
	User     string
	Password string    // the database credential (or the native password)
	Expiry   time.Time // zero for a native password
}

// String hides the password.
func (c Credential) String() string {
	return fmt.Sprintf("lakebase.Credential{%s@%s:%d/%s, expiry %s}", c.User, c.Host, c.Port, c.Database, c.Expiry.Format(time.RFC3339))
}

// Format hides the password for every fmt verb.
func (c Credential) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// Credential runs the token pipeline and returns a login for another tool (psql,
// a migration runner in another language). Treat Password as a secret.
func (c *Connector) Credential(ctx context.Context) (Credential, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	li, err := c.auth.login(ctx, "")
	if err != nil {
		return Credential{}, err
	}
	cr := Credential{Host: li.host, Port: li.port, Database: c.cfg.Database, User: li.user, Password: li.password}
	if a, ok := c.auth.(*oauthAuth); ok {
		if _, exp, ok := a.cred.Peek(); ok {
			cr.Expiry = exp
		}
	}
	return cr, nil
}

// Logout removes the connector's stored tokens (from OAuthSettingsLocation) and
// drops its cached token and credential.
func (c *Connector) Logout(ctx context.Context) error {
	a, ok := c.auth.(*oauthAuth)
	if !ok {
		return nil
	}
	a.ws.Invalidate(nil)
	a.cred.Invalidate(nil)
	if c.cfg.InitiateOAuth == InitiateOff {
		return nil
	}
	return a.src.Forget(ctx)
}

// SettingsLocation returns where the connector stores tokens ("" when nowhere).
func (c *Connector) SettingsLocation() string {
	if a, ok := c.auth.(*oauthAuth); ok && c.cfg.InitiateOAuth != InitiateOff {
		return a.src.Store.Location()
	}
	return ""
}
