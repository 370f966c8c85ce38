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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Option configures a Connector. Options only record values; NewConnector validates
// them together with the connection string.
type Option func(*options)

type options struct {
	logger      *slog.Logger
	httpClient  *http.Client
	openBrowser func(url string) error
	stderr      io.Writer
}

// WithLogger sends the driver's log records to l. Without it, the Verbosity and
// Logfile properties decide (off by default). Secrets are never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHTTPClient sets the HTTP client used for the workspace's OIDC and REST APIs.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithBrowserOpener replaces the function that opens the system browser in the
// desktop OAuthPKCE flow (for tests, or to show the URL another way).
func WithBrowserOpener(open func(url string) error) Option {
	return func(o *options) { o.openBrowser = open }
}

// WithStderr sets where the desktop OAuthPKCE flow prints the login URL (default
// os.Stderr), in case no browser opens.
func WithStderr(w io.Writer) Option { return func(o *options) { o.stderr = w } }

// Connector is a driver.Connector for Lakebase. It owns the token pipeline of one
// configuration; share one Connector (through one *sql.DB) per configuration, and
// Close it when done. sql.DB.Close closes it.
type Connector struct {
	cfg    *Config
	opts   options
	logger *slog.Logger
	base   *pgx.ConnConfig
	roots  *x509.CertPool
	auth   authenticator
	logf   io.Closer // the Logfile, when the connector opened it

	ownTransport *http.Transport // closed by Close when the connector made it

	closeOnce sync.Once
}

// authenticator supplies the login of each new Postgres session.
type authenticator interface {
	// login returns where and as whom to log in, and the password. refused, when
	// set, is a password the server just refused: it must not be handed out again.
	login(ctx context.Context, refused string) (loginInfo, error)
	// retryable reports whether a refused login is worth one retry with a fresh credential.
	retryable() bool
	close()
}

type loginInfo struct {
	host     string
	port     int
	user     string
	password string
}

// NewConnector parses dsn and returns a Connector for sql.OpenDB.
func NewConnector(dsn string, opts ...Option) (*Connector, error) {
	cfg, err := ParseDSN(dsn)
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
	c := &Connector{cfg: cfg.clone()}
	for _, o := range opts {
		o(&c.opts)
	}
	if err := c.cfg.Validate(); err != nil {
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
	if c.opts.stderr == nil {
		c.opts.stderr = os.Stderr
	}
	c.logger.Debug("lakebase: connector created", slog.Any("config", *c.cfg))
	switch c.cfg.AuthScheme {
	case AuthPassword:
		c.auth = &passwordAuth{cfg: c.cfg}
	default:
		a, err := newOAuthAuth(c)
		if err != nil {
			return nil, err
		}
		c.auth = a
	}
	return c, nil
}

func (c *Config) clone() *Config {
	n := *c
	if c.Ignored != nil {
		n.Ignored = make(map[string]string, len(c.Ignored))
		for k, v := range c.Ignored {
			n.Ignored[k] = v
		}
	}
	return &n
}

// Config returns a copy of the connector's validated configuration.
func (c *Connector) Config() *Config { return c.cfg.clone() }

// Connect returns a new connection. The Postgres session behind it is opened lazily,
// by the first statement that needs the database, so the virtual OAuth procedures
// work with no token and no reachable database.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &conn{connector: c}, nil
}

// Driver returns the lakebase Driver.
func (c *Connector) Driver() driver.Driver { return &Driver{} }

// Close stops everything the connector started (background refreshes, callback
// servers, the log file). Open connections are not closed. Close is idempotent.
func (c *Connector) Close() error {
	c.closeOnce.Do(func() {
		c.auth.close()
		if c.ownTransport != nil {
			c.ownTransport.CloseIdleConnections()
		}
		if c.logf != nil {
			c.logf.Close()
		}
	})
	return nil
}

// dial opens a Postgres session: it obtains the login, connects through pgx, and
// after a 28P01/28000 refusal retries once with a fresh credential.
func (c *Connector) dial(ctx context.Context) (*stdlib.Conn, error) {
	parent := ctx
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	sc, err := c.dialOnce(ctx)
	// A deadline the caller did not set is Timeout's: on this connect, or on the token
	// fetch it waited for (which has its own Timeout and may expire a moment earlier).
	if err != nil && parent.Err() == nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
		return nil, fmt.Errorf("lakebase: connecting (token work included) did not finish within Timeout=%v: %w", c.cfg.Timeout, err)
	}
	return sc, err
}

func (c *Connector) dialOnce(ctx context.Context) (*stdlib.Conn, error) {
	li, err := c.auth.login(ctx, "")
	if err != nil {
		return nil, err
	}
	sc, err := c.connectPgx(ctx, li)
	if err == nil {
		return sc, nil
	}
	state := authFailureState(err)
	if state == "" {
		return nil, err
	}
	if c.auth.retryable() {
		c.logger.Info("lakebase: login refused; minting a fresh credential and retrying once",
			slog.String("user", li.user), slog.String("sqlstate", state))
		if li, err = c.auth.login(ctx, li.password); err != nil {
			return nil, err
		}
		if sc, err = c.connectPgx(ctx, li); err == nil {
			return sc, nil
		}
		if state = authFailureState(err); state == "" {
			return nil, err
		}
	}
	return nil, &LoginError{SQLState: state, User: li.user, Host: li.host, Err: err}
}

func (c *Connector) connectPgx(ctx context.Context, li loginInfo) (*stdlib.Conn, error) {
	cc, err := c.pgxConfigFor(li)
	if err != nil {
		return nil, err
	}
	dc, err := stdlib.GetConnector(*cc).Connect(ctx)
	if err != nil {
		return nil, err
	}
	return dc.(*stdlib.Conn), nil
}

// pgxConfigFor returns a pgx configuration for one login.
func (c *Connector) pgxConfigFor(li loginInfo) (*pgx.ConnConfig, error) {
	cc := c.base.Copy()
	cc.Host = li.host
	cc.Port = uint16(li.port)
	cc.User = li.user
	cc.Password = li.password
	if err := c.cfg.applyTLS(&cc.Config, li.host, c.roots); err != nil {
		return nil, err
	}
	return cc, nil
}

// authFailureState returns the SQLSTATE of a refused login, or "".
func authFailureState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000") {
		return pe.Code
	}
	return ""
}

// passwordAuth is AuthScheme=Password: a native Postgres password.
type passwordAuth struct{ cfg *Config }

func (a *passwordAuth) login(context.Context, string) (loginInfo, error) {
	return loginInfo{host: a.cfg.Server, port: a.cfg.Port, user: a.cfg.User, password: a.cfg.Password}, nil
}
func (a *passwordAuth) retryable() bool { return false }
func (a *passwordAuth) close()          {}

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
	if c.cfg.Timeout > 0 {
		return context.WithTimeout(ctx, c.cfg.Timeout)
	}
	return context.WithCancel(ctx)
}

// DefaultConnMaxLifetime is the pooled connection lifetime Databricks recommends for
// Lakebase: at most 45 minutes.
const DefaultConnMaxLifetime = 45 * time.Minute
