package lakebase

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/lakebase-go/lakebase/internal/pgsession"
)

// dialSession opens a pgx session.
func (c *Connector) dialSession(ctx context.Context) (session, *pgx.Conn, error) {
	sc, err := c.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.sessions.Add(1)
	return countedSession{sc, c}, sc.Conn(), nil
}

// countedSession is a session that leaves the connector's count when it closes.
type countedSession struct {
	*stdlib.Conn
	c *Connector
}

func (s countedSession) Close() error {
	s.c.sessions.Add(-1)
	return s.Conn.Close()
}

// dial opens a Postgres session: it obtains the login, connects through pgx, and
// after a 28P01/28000 refusal retries once with a fresh credential.
func (c *Connector) dial(ctx context.Context) (*stdlib.Conn, error) {
	c.connecting.Add(1)
	defer c.connecting.Add(-1)
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
	li, err := c.login(ctx, "")
	if err != nil {
		return nil, err
	}
	sc, err := c.connectWaking(ctx, li)
	if err == nil {
		return sc, nil
	}
	if li.storedHost && pgsession.AuthFailureState(err, li.pooled) == "" {
		// A host read back from the settings store did not take the connection (its
		// certificate did not verify, so no password was sent; or nothing listens
		// there): the store may be stale or tampered with. Ask the workspace.
		if c.pipe != nil && c.pipe.ForgetStoredHost(ctx, err) {
			if li, err = c.login(ctx, ""); err != nil {
				return nil, err
			}
			if sc, err = c.connectWaking(ctx, li); err == nil {
				return sc, nil
			}
		}
	}
	state := pgsession.AuthFailureState(err, li.pooled)
	if state == "" {
		return nil, c.hint(err, li)
	}
	if li.retryable {
		c.logger.Info("lakebase: login refused; minting a fresh credential and retrying once",
			slog.String("user", li.user), slog.String("sqlstate", state))
		c.opts.observers.emit(ctx, Event{Kind: EventRetry, Scheme: c.cfg.AuthScheme, Database: loginDatabase(li), User: li.user, Cause: state, Start: time.Now()}, nil)
		// A branch just made may refuse logins for a short while: with Project and
		// Branch, refused logins are retried with fresh credentials for up to
		// BranchLoginGrace (within Timeout). Not through a pooled host: its pooler's
		// refusal (PgBouncer's 08P01) is its own, and one fresh credential is all a
		// retry can try.
		deadline := time.Now()
		if c.cfg.Branch != "" && !li.pooled {
			deadline = deadline.Add(BranchLoginGrace)
		}
		for delay := 250 * time.Millisecond; ; delay = min(delay*2, 2*time.Second) {
			if li, err = c.login(ctx, li.password); err != nil {
				return nil, err
			}
			if sc, err = c.connectWaking(ctx, li); err == nil {
				return sc, nil
			}
			if state = pgsession.AuthFailureState(err, li.pooled); state == "" {
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
	lerr := &LoginError{SQLState: state, User: li.user, Host: li.host, Err: err,
		PooledOAuth: li.pooled && li.retryable}
	if li.retryable && !li.pooled && ctx.Err() == nil {
		// Lakebase answers a missing role as a wrong password: ask the workspace.
		return nil, c.missingRole(ctx, lerr)
	}
	return nil, lerr
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
	case "53300":
		// The compute's connection limit: never a waking compute, never retried.
		return &TooManyConnectionsError{Database: where, Held: int(c.sessions.Load()), Err: err}
	case "3D000":
		return fmt.Errorf("lakebase: database %q does not exist on %s (set Database to one of its databases, or name another database server with Endpoint, Instance, Project and Branch, or LAKEBASE_ENDPOINT; a branch has its parent's databases as they were when it was made): %w", c.cfg.Database, where, err)
	case "42704":
		return fmt.Errorf("lakebase: the role of %q does not exist on %s; create it for the identity (a role made on the parent after the branch was made is not on the branch): %w", li.user, where, err)
	}
	return err
}

func (c *Connector) connectPgx(ctx context.Context, li loginInfo) (*stdlib.Conn, error) {
	if len(c.opts.observers) == 0 {
		return c.connectPgxOnce(ctx, li)
	}
	start := time.Now()
	sc, err := c.connectPgxOnce(ctx, li)
	c.opts.observers.emit(ctx, Event{Kind: EventLogin, Scheme: c.cfg.AuthScheme, Database: loginDatabase(li), User: li.user,
		Start: start, Duration: time.Since(start), Expiry: li.expiry}, err)
	return sc, err
}

// loginDatabase is the resource name of a login's database ("" for a host).
func loginDatabase(li loginInfo) string {
	_, name, _ := strings.Cut(li.database, " ")
	return name
}

func (c *Connector) connectPgxOnce(ctx context.Context, li loginInfo) (*stdlib.Conn, error) {
	cc, err := c.pgxConfigFor(li)
	if err != nil {
		return nil, err
	}
	opts := []stdlib.OptionOpenDB{stdlib.OptionShouldPing(c.shouldPing)}
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

// shouldPing is pgx stdlib's ShouldPing for the connector's sessions: it runs in
// pgx's ResetSession, on every database/sql checkout, with the idle time pgx has
// already measured (see pgsession.PingBeforeReuse).
func (c *Connector) shouldPing(_ context.Context, p stdlib.ShouldPingParams) bool {
	return pgsession.PingBeforeReuse(p.Conn.PgConn(), p.IdleDuration, c.lookAfter)
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
// "the database system is starting up"), it asks the workspace for the database's
// state. While that state says it is waking (pgsession.WakingState), the connect is retried
// with backoff until ctx ends (Timeout), as the Databricks CLI does for
// scale-to-zero endpoints; otherwise (ACTIVE, AVAILABLE, or not known) it is tried
// upTries times in all, and a host that still refuses is a HostRefusedError.
func (c *Connector) connectWaking(ctx context.Context, li loginInfo) (_ *stdlib.Conn, wakeErr error) {
	sc, err := c.connectPgx(ctx, li)
	if err == nil || li.database == "" || !pgsession.ColdStartError(err) || li.storedHost {
		// A host from the store is not waited for: it is looked up again first.
		return sc, err
	}
	if c.database != nil {
		state, serr := c.database.DatabaseState(ctx)
		if serr != nil {
			return nil, serr // a disabled endpoint does not wake: no retries
		}
		if state != "" {
			li.state = state
		}
	}
	if !pgsession.WakingState(li.state) && !pgsession.ComingBack(err) {
		return c.connectUp(ctx, li, err)
	}
	return c.waitAwake(ctx, li, err)
}

// waitAwake retries the connect of a waking (or restarting) database with jittered
// backoff until ctx ends (Timeout); err is the connect's first error.
func (c *Connector) waitAwake(ctx context.Context, li loginInfo, err error) (_ *stdlib.Conn, wakeErr error) {
	start, octx := time.Now(), ctx
	c.opts.observers.emit(ctx, Event{Kind: EventRetry, Scheme: c.cfg.AuthScheme, Database: loginDatabase(li), User: li.user, Cause: "wake", Start: start}, nil)
	defer func() {
		// How long the connect waited for the compute, and whether it woke.
		c.opts.observers.emit(octx, Event{Kind: EventWakeWait, Scheme: c.cfg.AuthScheme, Database: loginDatabase(li), Start: start, Duration: time.Since(start)}, wakeErr)
	}()
	c.logger.Info("lakebase: the database is not taking connections yet (an idle endpoint wakes on connect); retrying until Timeout",
		slog.String("database", li.database), slog.String("state", li.state), slog.String("error", err.Error()))
	ctx, cancel := context.WithTimeout(ctx, pgsession.MaxWake)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		// Jittered (half to all of delay), so clients that met the same restart do
		// not come back in step.
		t := time.NewTimer(delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &WakeError{Database: li.database, State: li.state, Waited: time.Since(start).Round(time.Millisecond), Err: err}
		case <-t.C:
		}
		sc, cerr := c.connectPgx(ctx, li)
		if cerr == nil {
			c.logger.Info("lakebase: the database woke up", slog.String("database", li.database), slog.Duration("after", time.Since(start)))
			return sc, nil
		}
		if ctx.Err() != nil {
			// The wait ended during a connect (on a slow machine a connect is much of
			// the wait): the same WakeError as between connects, with the compute's
			// last answer, not the dial the deadline cut short.
			return nil, &WakeError{Database: li.database, State: li.state, Waited: time.Since(start).Round(time.Millisecond), Err: err}
		}
		if err = cerr; !pgsession.ColdStartError(err) {
			return nil, err
		}
		delay = pgsession.NextWakeDelay(delay, err)
	}
}

// upTries is how many connects in all are made to a database whose state says it
// is up (or does not say) before its refusal is the answer: a Lakebase proxy takes
// connections while a compute wakes, so a refused one is no wake.
const upTries = 4

// connectUp retries the connect of a database that is not waking, a few times
// (err is the first connect's error), then returns a HostRefusedError for a host
// that could not be dialled, or the server's own last answer.
func (c *Connector) connectUp(ctx context.Context, li loginInfo, err error) (*stdlib.Conn, error) {
	c.logger.Info("lakebase: the database did not take the connection though it is not waking; trying a few more times",
		slog.String("database", li.database), slog.String("state", li.state), slog.String("error", err.Error()))
	c.opts.observers.emit(ctx, Event{Kind: EventRetry, Scheme: c.cfg.AuthScheme, Database: loginDatabase(li), User: li.user, Cause: "connect", Start: time.Now()}, nil)
	delay := 100 * time.Millisecond
	for tries := 1; ; tries++ {
		if tries == upTries {
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" {
				return nil, &HostRefusedError{Host: net.JoinHostPort(li.host, strconv.Itoa(li.port)), Database: li.database,
					State: li.state, Attempts: tries, Err: err}
			}
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay *= 2
		sc, cerr := c.connectPgx(ctx, li)
		if cerr == nil {
			return sc, nil
		}
		if err = cerr; !pgsession.ColdStartError(err) {
			return nil, err
		}
		if pgsession.ComingBack(err) {
			// The server itself says it is starting or restarting: wait for it.
			return c.waitAwake(ctx, li, err)
		}
	}
}
