package lakebase

import (
	"context"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"github.com/lakebase-go/lakebase/internal/pgsession"
	"github.com/lakebase-go/lakebase/internal/pipeline"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/workspace"
)

// Connector is a driver.Connector for Lakebase. It owns the token pipeline of one
// configuration; share one Connector (through one *sql.DB) per configuration, and
// Close it when done. sql.DB.Close closes it.
type Connector struct {
	cfg    *Config
	opts   options
	logger *slog.Logger
	base   *pgx.ConnConfig
	roots  *x509.CertPool
	pipe   *pipeline.Pipeline // the login of every token scheme; nil for AuthScheme=Password
	// database asks the workspace about the logins' database (its state, the
	// identity's role); nil for a native password, which has no workspace.
	database workspaceDatabase
	steps    *personLogin // the login steps of a person; nil when the scheme has none
	logf     io.Closer    // the Logfile, when the connector opened it

	ownTransport *http.Transport // closed by Close when the connector made it
	// hostMeta is the workspace host's metadata, read when first needed (a unified
	// host's OIDC and workspace id).
	hostMeta *oauth.HostMetadataCache

	// open opens a Postgres session: dialSession, or a stand-in in unit tests.
	open func(ctx context.Context) (session, *pgx.Conn, error)

	poolApplied atomic.Bool // OpenDB or PoolConfig applied the pool properties
	// sessions counts the Postgres sessions of this connector's database/sql
	// connections that are open now (for the connection-limit message).
	sessions atomic.Int64
	// connecting counts the logins under way.
	connecting atomic.Int64
	// lifetime is the pooled sessions' maximum lifetime (set by OpenDB); each
	// session leaves the pool at a jittered moment before it.
	lifetime atomic.Int64
	// lookAfter is how long a pooled session sits idle before it is looked at on its
	// way out of the pool (pgsession.LookAfterIdle; tests set it through an internal hook).
	lookAfter    time.Duration
	poolWarnOnce sync.Once
	poolWaitOnce sync.Once

	closeOnce sync.Once
}

// NewConnector parses dsn and returns a Connector for sql.OpenDB.
func NewConnector(dsn string, opts ...Option) (*Connector, error) {
	cfg, err := parseDSNNoDefaults(dsn, os.Getenv)
	if err != nil {
		return nil, err
	}
	return NewConnectorFromConfig(cfg, opts...)
}

// NewConnectorFromConfig returns a Connector for a Config (validated here; the Config
// is copied and may be reused by the caller).
func NewConnectorFromConfig(cfg *Config, opts ...Option) (*Connector, error) {
	if cfg == nil {
		return nil, &ConfigError{Err: errors.New("nil Config")}
	}
	c := &Connector{cfg: cfg.clone(), lookAfter: pgsession.LookAfterIdle}
	c.open = c.dialSession
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o(&c.opts)
		}
	}
	if cl := c.opts.claims; cl != nil {
		if err := cl.Validate(); err != nil {
			return nil, &ConfigError{Property: "CredentialClaims", Value: cl.String(), Err: err}
		}
		c.cfg.CredentialClaims = cl
	}
	if c.opts.tokenSource != nil {
		switch c.cfg.AuthScheme {
		case "", AuthTokenSource:
			c.cfg.AuthScheme = AuthTokenSource
		default:
			return nil, &ConfigError{Property: "AuthScheme", Value: string(c.cfg.AuthScheme),
				Err: errors.New("cannot be combined with WithTokenSource: the token source is the login (omit AuthScheme)")}
		}
	} else if c.cfg.AuthScheme == AuthTokenSource {
		return nil, &ConfigError{Property: "AuthScheme", Value: string(c.cfg.AuthScheme), Err: errors.New("needs the WithTokenSource option")}
	}
	if err := c.cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := c.cfg.validate(); err != nil {
		return nil, err
	}
	if err := c.setupLogger(); err != nil {
		return nil, err
	}
	var err error
	if c.base, err = c.cfg.basePgxConfig(); err != nil {
		return nil, err
	}
	if c.roots, err = c.cfg.loadServerCert(); err != nil {
		return nil, err
	}
	if c.opts.httpClient == nil {
		// A transport of its own, so Close can close its idle connections: no
		// goroutine of the connector outlives Close.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		c.ownTransport = tr
		c.opts.httpClient = &http.Client{Transport: tr}
	}
	// Every workspace and OAuth request names the driver, as the Databricks SDKs do.
	c.opts.httpClient = httpx.WithUserAgent(c.opts.httpClient, httpx.UserAgent(Version, c.cfg.AuthScheme.userAgentName()))
	c.hostMeta = &oauth.HostMetadataCache{HTTP: c.opts.httpClient, Host: c.cfg.DatabricksInstance}
	if c.opts.stderr == nil {
		c.opts.stderr = os.Stderr
	}
	c.logger.Debug("lakebase: connector created", slog.Any("config", *c.cfg))
	for _, env := range c.cfg.envIgnored {
		c.logger.Info("lakebase: ignoring an environment variable: the connection string names the database by Endpoint, Project or Instance, whose host comes from the workspace",
			slog.String("variable", env))
	}
	if c.pipe, c.steps, err = c.newLoginSource(); err != nil {
		c.Close()
		return nil, err
	}
	if c.cfg.ConnectOnOpen {
		// Log in once now: a wrong secret, host or role fails here, not at the first query.
		sc, err := c.dial(context.Background())
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("lakebase: ConnectOnOpen: %w", err)
		}
		sc.Close()
	}
	return c, nil
}

// Config returns a copy of the connector's validated configuration.
func (c *Connector) Config() *Config {
	if c == nil || c.cfg == nil {
		return &Config{}
	}
	return c.cfg.clone()
}

// HTTPClient returns the HTTP client the connector sends its workspace and OAuth
// requests with: the one given with WithHTTPClient, else its own (closed by Close).
// Code that calls the workspace's APIs for the connector's login uses it too.
func (c *Connector) HTTPClient() *http.Client { return c.opts.httpClient }

// Connect returns a new connection. The Postgres session behind it is opened lazily,
// by the first statement that needs the database, so the virtual OAuth procedures
// work with no token and no reachable database.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if !c.opened() {
		return nil, ErrConnectorNotOpened
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.cfg.poolSettings() && !c.poolApplied.Load() {
		c.poolWarnOnce.Do(func() {
			c.logger.Warn("lakebase: the pool properties (UseConnectionPooling, PoolMaxSize, PoolMinSize, PoolIdleTimeout, PoolWaitTime, PoolMaxLifetime) " +
				"are applied by lakebase.OpenDB and Connector.PoolConfig only; with sql.Open set them on the *sql.DB (SetMaxOpenConns, ...)")
		})
	}
	return &Conn{connector: c}, nil
}

// Driver returns the lakebase Driver.
func (c *Connector) Driver() driver.Driver { return &Driver{} }

// Close stops everything the connector started (background refreshes, callback
// servers, the log file). Open connections are not closed. Close is idempotent.
func (c *Connector) Close() error {
	c.closeOnce.Do(func() {
		if c.pipe != nil {
			c.pipe.Close()
		}
		if c.ownTransport != nil {
			c.ownTransport.CloseIdleConnections()
		}
		if c.logf != nil {
			c.logf.Close()
		}
	})
	return nil
}

// warnPoolWait says once that PoolWaitTime cannot be enforced.
func (c *Connector) warnPoolWait() {
	if c.cfg.PoolWaitTime > 0 {
		c.poolWaitOnce.Do(func() {
			c.logger.Warn("lakebase: PoolWaitTime is not enforced (neither database/sql nor pgxpool has an acquire timeout); bound waits with context.WithTimeout",
				slog.Duration("PoolWaitTime", c.cfg.PoolWaitTime))
		})
	}
}

func (c *Connector) setupLogger() error {
	if c.opts.logger != nil {
		c.logger = c.opts.logger
		return nil
	}
	if c.cfg.Verbosity == 0 {
		c.logger = slog.New(slog.DiscardHandler)
		return nil
	}
	var w io.Writer = os.Stderr
	if c.cfg.Logfile != "" {
		f, err := os.OpenFile(c.cfg.Logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return &ConfigError{Property: "Logfile", Value: c.cfg.Logfile, Err: fmt.Errorf("cannot be opened: %w", err)}
		}
		c.logf = f
		w = f
	}
	c.logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: verbosityLevel(c.cfg.Verbosity)}))
	return nil
}

// verbosityLevel maps CData Verbosity 1..5 to slog levels: 1 errors and warnings,
// 2 info, 3 and above debug (4 and 5 add per-statement detail).
func verbosityLevel(v int) slog.Level {
	switch v {
	case 1:
		return slog.LevelWarn
	case 2:
		return slog.LevelInfo
	case 3:
		return slog.LevelDebug
	default:
		return slog.LevelDebug - 4
	}
}

// bounded returns ctx limited by Timeout (unlimited for Timeout=0).
func (c *Connector) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg != nil && c.cfg.Timeout > 0 {
		return context.WithTimeout(ctx, c.cfg.Timeout)
	}
	return context.WithCancel(ctx)
}

// Workspace returns a client of the workspace REST API with this connector's
// workspace token and HTTP client, naming the workspace (X-Databricks-Workspace-Id)
// as the connector's own calls do: WorkspaceId, else what the host's metadata says
// when a unified host asks for it.
func (c *Connector) Workspace() *workspace.Client {
	return workspace.New(c.cfg.DatabricksInstance, c.TokenSource(), c.HTTPClient(), c.workspaceOptions(workspace.Options{}))
}

// workspaceOptions adds the workspace id handling to o.
func (c *Connector) workspaceOptions(o workspace.Options) workspace.Options {
	o.WorkspaceID = c.cfg.WorkspaceID
	meta := c.hostMeta
	if meta == nil {
		return o
	}
	o.KnownWorkspaceID = func() string {
		if m := meta.Known(); m != nil {
			return m.WorkspaceID
		}
		return ""
	}
	o.ResolveWorkspaceID = func(ctx context.Context) (string, error) {
		m, err := meta.Get(ctx)
		if err != nil {
			return "", err
		}
		return m.WorkspaceID, nil
	}
	o.WorkspaceIDRefused = func(ctx context.Context, refused string) (string, error) {
		m, err := meta.Refused(ctx, refused)
		if err != nil {
			return "", err
		}
		return m.WorkspaceID, nil
	}
	return o
}

// DefaultConnMaxLifetime is the pooled connection lifetime Databricks recommends for
// Lakebase: at most 45 minutes.
const DefaultConnMaxLifetime = 45 * time.Minute
