package lakebase

import (
	"context"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lakebase-go/lakebase/internal/httpx"
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
	login  loginSource  // where each session's login comes from
	steps  *personLogin // the login steps of a person; nil when the scheme has none
	logf   io.Closer    // the Logfile, when the connector opened it

	ownTransport *http.Transport // closed by Close when the connector made it

	// open opens a Postgres session: dialSession, or a stand-in in unit tests.
	open func(ctx context.Context) (session, *pgx.Conn, error)

	poolApplied  atomic.Bool // OpenDB or PoolConfig applied the pool properties
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
	c := &Connector{cfg: cfg.clone()}
	c.open = c.dialSession
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o(&c.opts)
		}
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
	if c.opts.stderr == nil {
		c.opts.stderr = os.Stderr
	}
	c.logger.Debug("lakebase: connector created", slog.Any("config", *c.cfg))
	for _, env := range c.cfg.envIgnored {
		c.logger.Info("lakebase: ignoring an environment variable: the connection string names the database by Endpoint or Instance, whose host comes from the workspace",
			slog.String("variable", env))
	}
	if c.login, c.steps, err = c.newLoginSource(); err != nil {
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

func (c *Config) clone() *Config {
	n := *c
	for _, p := range []**int{&n.StatementCacheCapacity, &n.DescriptionCacheCapacity, &n.PoolMaxSize, &n.PoolMinSize} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	if c.Ignored != nil {
		n.Ignored = make(map[string]string, len(c.Ignored))
		for k, v := range c.Ignored {
			n.Ignored[k] = v
		}
	}
	return &n
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
	if c == nil || c.login == nil {
		return nil, ErrConnectorNotOpened
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.cfg.poolSettings() && !c.poolApplied.Load() {
		c.poolWarnOnce.Do(func() {
			c.logger.Warn("lakebase: the pool properties (UseConnectionPooling, PoolMaxSize, PoolMinSize, PoolIdleTimeout, PoolWaitTime) " +
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
		if c.login != nil {
			c.login.close()
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

// dialSession opens a pgx session.
func (c *Connector) dialSession(ctx context.Context) (session, *pgx.Conn, error) {
	sc, err := c.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return sc, sc.Conn(), nil
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
	li, err := c.login.login(ctx, "")
	if err != nil {
		return nil, err
	}
	sc, err := c.connectWaking(ctx, li)
	if err == nil {
		return sc, nil
	}
	state := authFailureState(err)
	if state == "" {
		return nil, c.hint(err, li)
	}
	if li.retryable {
		c.logger.Info("lakebase: login refused; minting a fresh credential and retrying once",
			slog.String("user", li.user), slog.String("sqlstate", state))
		// A branch just made may refuse logins for a short while: with Project and
		// Branch, refused logins are retried with fresh credentials for up to
		// BranchLoginGrace (within Timeout).
		deadline := time.Now()
		if c.cfg.Branch != "" {
			deadline = deadline.Add(BranchLoginGrace)
		}
		for delay := 250 * time.Millisecond; ; delay = min(delay*2, 2*time.Second) {
			if li, err = c.login.login(ctx, li.password); err != nil {
				return nil, err
			}
			if sc, err = c.connectWaking(ctx, li); err == nil {
				return sc, nil
			}
			if state = authFailureState(err); state == "" {
				return nil, c.hint(err, li)
			}
			if time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
				break
			}
			c.logger.Info("lakebase: login to a new branch refused; retrying", slog.String("database", li.database), slog.Duration("wait", delay))
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
		}
	}
	return nil, &LoginError{SQLState: state, User: li.user, Host: li.host, Err: err}
}

// tlsHint says what to do about a server certificate that does not verify, as
// lakebase status does: SSLServerCert names the CA (or system for the OS roots).
func (c *Connector) tlsHint(err error, li loginInfo) error {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if !errors.As(err, &ua) && !errors.As(err, &he) && !errors.As(err, &ci) {
		return err
	}
	if c.cfg.SSLServerCert == "" {
		return fmt.Errorf("lakebase: the server certificate of %s does not verify with SSLMode=%s and no SSLServerCert: set SSLServerCert to its CA (a file or PEM), or SSLServerCert=system for the OS roots (lakebase status reports which works): %w", li.host, c.cfg.SSLMode, err)
	}
	return fmt.Errorf("lakebase: the server certificate of %s does not verify against SSLServerCert (lakebase status reports whether the system roots would): %w", li.host, err)
}

// BranchLoginGrace is how long refused logins to a branch named by Branch are
// retried with fresh credentials: right after a branch is made, Lakebase may
// refuse logins for a short while.
const BranchLoginGrace = 30 * time.Second

// hint adds what to do to connect errors that cannot heal by retrying.
func (c *Connector) hint(err error, li loginInfo) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return c.tlsHint(err, li)
	}
	if rerr := c.sessionRoleError(pe, li.user); rerr != nil {
		return rerr
	}
	where := li.database
	if where == "" {
		where = li.host
	}
	switch pe.Code {
	case "3D000":
		return fmt.Errorf("lakebase: database %q does not exist on %s (set Database to one of its databases, or name another database server with Endpoint, Instance, Project and Branch, or LAKEBASE_ENDPOINT; a branch has its parent's databases as they were when it was made): %w", c.cfg.Database, where, err)
	case "42704":
		return fmt.Errorf("lakebase: the role of %q does not exist on %s; create it for the identity (a role made on the parent after the branch was made is not on the branch): %w", li.user, where, err)
	}
	return err
}

func (c *Connector) connectPgx(ctx context.Context, li loginInfo) (*stdlib.Conn, error) {
	cc, err := c.pgxConfigFor(li)
	if err != nil {
		return nil, err
	}
	var opts []stdlib.OptionOpenDB
	if c.needsAfterConnect() {
		opts = append(opts, stdlib.OptionAfterConnect(c.afterConnect))
	}
	dc, err := stdlib.GetConnector(*cc, opts...).Connect(ctx)
	if err != nil {
		return nil, err
	}
	return dc.(*stdlib.Conn), nil
}

// pgxConfigFor returns a pgx configuration for one login.
func (c *Connector) pgxConfigFor(li loginInfo) (*pgx.ConnConfig, error) {
	cc := c.base.Copy()
	if err := c.applyLogin(cc, li); err != nil {
		return nil, err
	}
	return cc, nil
}

// applyLogin runs the WithPgxConfig hooks, then sets what the login decides (where,
// as whom, the password, TLS), so no hook can change those.
func (c *Connector) applyLogin(cc *pgx.ConnConfig, li loginInfo) error {
	for _, fn := range c.opts.pgxConfig {
		fn(cc)
	}
	cc.Host, cc.Port, cc.User, cc.Password = li.host, uint16(li.port), li.user, li.password
	cc.Fallbacks = nil
	return c.cfg.applyTLS(&cc.Config, li.host, c.roots)
}

// needsAfterConnect reports whether new sessions need afterConnect.
func (c *Connector) needsAfterConnect() bool { return len(c.opts.afterConnect) > 0 }

// afterConnect runs the WithAfterConnect hooks on a new session.
func (c *Connector) afterConnect(ctx context.Context, pc *pgx.Conn) error {
	for _, fn := range c.opts.afterConnect {
		if err := fn(ctx, pc); err != nil {
			return fmt.Errorf("lakebase: an AfterConnect hook failed: %w", err)
		}
	}
	return nil
}

// sessionRoleError is the clear form of a startup refused for SessionRole: the role
// does not exist (22023 invalid value for parameter "role") or is not granted
// (42501 permission denied to set role).
func (c *Connector) sessionRoleError(pe *pgconn.PgError, user string) error {
	role := c.cfg.SessionRole
	if role == "" || (pe.Code != "42501" && pe.Code != "22023" && pe.Code != "42704") || !strings.Contains(pe.Message, "role") {
		return nil
	}
	return &ConfigError{Property: "SessionRole", Value: role, Err: fmt.Errorf(
		"cannot be set by %s (%s: %s): the role must exist and be granted to the identity (GRANT %s TO %s)",
		user, pe.Code, pe.Message, pgx.Identifier{role}.Sanitize(), pgx.Identifier{user}.Sanitize())}
}

// connectWaking connects; when the database is a Lakebase endpoint or instance and
// the connect fails as a waking compute does (dial errors, SQLSTATE class 08, 57P03
// "the database system is starting up"), it retries with backoff until ctx ends
// (Timeout), as the Databricks CLI does for scale-to-zero endpoints.
func (c *Connector) connectWaking(ctx context.Context, li loginInfo) (*stdlib.Conn, error) {
	sc, err := c.connectPgx(ctx, li)
	if err == nil || li.database == "" || !coldStartError(err) {
		return sc, err
	}
	start := time.Now()
	c.logger.Info("lakebase: the database is not taking connections yet (an idle endpoint wakes on connect); retrying until Timeout",
		slog.String("database", li.database), slog.String("state", li.state), slog.String("error", err.Error()))
	ctx, cancel := context.WithTimeout(ctx, maxWake)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &WakeError{Database: li.database, State: li.state, Waited: time.Since(start).Round(time.Millisecond), Err: err}
		case <-t.C:
		}
		delay = min(delay*2, 2*time.Second)
		sc, err = c.connectPgx(ctx, li)
		if err == nil {
			c.logger.Info("lakebase: the database woke up", slog.String("database", li.database), slog.Duration("after", time.Since(start)))
			return sc, nil
		}
		if !coldStartError(err) {
			return nil, err
		}
	}
}

// maxWake bounds the wait for a waking compute when Timeout sets no limit (the
// Databricks CLI's budget).
const maxWake = 120 * time.Second

// coldStartError reports whether err is what a compute that is waking up answers.
func coldStartError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P03"
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// authFailureState returns the SQLSTATE of a refused login, or "".
func authFailureState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000") {
		return pe.Code
	}
	return ""
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

// DefaultConnMaxLifetime is the pooled connection lifetime Databricks recommends for
// Lakebase: at most 45 minutes.
const DefaultConnMaxLifetime = 45 * time.Minute
