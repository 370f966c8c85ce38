package lakebase

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Conn is the driver.Conn handed to database/sql, as pgx exports *stdlib.Conn: code
// that type-asserted pgx's connection in sql.Conn.Raw asserts *lakebase.Conn:
//
//	err := sqlConn.Raw(func(dc any) error {
//		pc := dc.(*lakebase.Conn).Conn() // the *pgx.Conn
//		...
//	})
//
// It answers the virtual OAuth procedures itself and delegates everything else to a
// pgx stdlib connection, which it opens on the first statement that needs the
// database.
//
// The hot path: a query through database/sql costs what it costs through plain pgx
// (BenchmarkClientCPU measures the client's CPU per query beside pgx's). Per
// statement the driver adds only storedproc.Parse's first-byte test (is it EXEC?),
// the pooled host's advisory-lock check (a field test unless Pooled=true) and a
// branch on the open session; per checkout, ResetSession's flag test before pgx's
// own; per return to the pool, IsValid. Rows and prepared statements are pgx's
// own; a transaction is pgx's, begun on the *pgx.Conn and held by a reused
// wrapper (one allocation fewer than through pgx's stdlib, whose wrapper is made
// per transaction). On a session reused within pgsession.LookAfterIdle (100 ms), no clock
// read, map lookup, allocation or system call of the driver's own happens per
// query, except that MaxRows, when set, wraps each result's rows (one allocation).
type Conn struct {
	connector *Connector
	pg        session   // nil until the session is opened
	px        *pgx.Conn // pg's *pgx.Conn (nil when the session is not pgx's)
	// expired is set by expiry, a timer started with the session, when the session's
	// jittered lifetime (OpenDB's) has passed: a checkout reads a flag, not the clock.
	expired atomic.Bool
	expiry  *time.Timer // nil: the session never expires
	tx      *lazyTx     // the open transaction, if any (points at txState)
	txState lazyTx      // reused by every transaction: BeginTx does not allocate
	closed  bool

	ownsConnector bool // opened by Driver.Open: Close closes the connector too
}

// sessionExpiry is when a session opened at opened with OpenDB's lifetime life
// leaves the pool: up to a tenth earlier than life at random, so sessions opened
// together do not all end together, and never later (database/sql's own
// SetConnMaxLifetime(life) is the bound behind it).
func sessionExpiry(opened time.Time, life time.Duration) time.Time {
	return opened.Add(life - time.Duration(rand.Int64N(int64(life/10)+1)))
}

// session is what the wrapper needs of a Postgres session. pgx's *stdlib.Conn is
// the one the driver uses; the unit tests put go-sqlmock's connection there.
type session interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
}

var _ session = (*stdlib.Conn)(nil)

// Compile-time checks: every optional interface pgx's connection implements.
var (
	_ driver.Conn               = (*Conn)(nil)
	_ driver.ConnBeginTx        = (*Conn)(nil)
	_ driver.ConnPrepareContext = (*Conn)(nil)
	_ driver.ExecerContext      = (*Conn)(nil)
	_ driver.QueryerContext     = (*Conn)(nil)
	_ driver.Pinger             = (*Conn)(nil)
	_ driver.NamedValueChecker  = (*Conn)(nil)
	_ driver.SessionResetter    = (*Conn)(nil)
	_ driver.Validator          = (*Conn)(nil)
)

// session returns the Postgres session, opening it when needed, and sends the BEGIN
// of a transaction begun before the session was open.
//
// ctx governs only the statement at hand (and so the login that opens the session);
// the deferred BEGIN runs under the context the transaction was begun with, which pgx
// also keeps for COMMIT and ROLLBACK — exactly as if the session had been open at
// BeginTx. A statement's shorter context must never become the transaction's.
func (c *Conn) session(ctx context.Context) (session, error) {
	if c.pg == nil {
		if c.closed {
			return nil, driver.ErrBadConn
		}
		pg, px, err := c.connector.open(ctx)
		if err != nil {
			return nil, err
		}
		c.pg, c.px = pg, px
		if life := time.Duration(c.connector.lifetime.Load()); life > 0 {
			// Up to a tenth earlier, so sessions opened together do not all end together.
			now := time.Now()
			c.expiry = time.AfterFunc(sessionExpiry(now, life).Sub(now), func() { c.expired.Store(true) })
		}
	}
	if t := c.tx; t != nil && !t.begun() {
		if t.beginErr != nil {
			return nil, t.beginErr
		}
		if err := c.begin(t); err != nil {
			// No statement of this transaction may run outside it: every later one,
			// and Commit, report that BEGIN failed.
			t.beginErr = fmt.Errorf("lakebase: the transaction could not begin: %w", err)
			return nil, t.beginErr
		}
	}
	return c.pg, nil
}

// begin sends t's BEGIN on the open session, under the context t was begun with.
//
// On pgx's session it begins on the *pgx.Conn itself, doing what stdlib's BeginTx
// does (driver.ErrBadConn for a session pgx has closed, so database/sql begins on
// another; the same isolation and access mode) without stdlib's wrapTx, which costs
// an allocation per transaction: t holds pgx's transaction and commits it under
// t.ctx, as wrapTx would. Any other session (go-sqlmock's, in unit tests) is begun
// through database/sql's interface.
func (c *Conn) begin(t *lazyTx) error {
	if c.px == nil {
		tx, err := c.pg.BeginTx(t.ctx, t.opts)
		if err != nil {
			return err
		}
		t.tx = tx
		return nil
	}
	if c.px.IsClosed() {
		return driver.ErrBadConn
	}
	var o pgx.TxOptions
	switch sql.IsolationLevel(t.opts.Isolation) {
	case sql.LevelReadUncommitted:
		o.IsoLevel = pgx.ReadUncommitted
	case sql.LevelReadCommitted:
		o.IsoLevel = pgx.ReadCommitted
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		o.IsoLevel = pgx.RepeatableRead
	case sql.LevelSerializable:
		o.IsoLevel = pgx.Serializable
	}
	if t.opts.ReadOnly {
		o.AccessMode = pgx.ReadOnly
	}
	tx, err := c.px.BeginTx(t.ctx, o)
	if err != nil {
		return err
	}
	t.ptx = tx
	return nil
}

// Conn returns the underlying *pgx.Conn, opening the session if needed (bounded by
// Timeout). It returns nil when the session cannot be opened; use RawConn to see why.
// It is what sql.Conn.Raw exposes, as with pgx's own driver.
func (c *Conn) Conn() *pgx.Conn {
	pc, _ := c.RawConn(context.Background())
	return pc
}

// RawConn is Conn with a context and an error.
func (c *Conn) RawConn(ctx context.Context) (*pgx.Conn, error) {
	if _, err := c.session(ctx); err != nil {
		return nil, err
	}
	return c.px, nil
}

func (c *Conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *Conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if st, ok, err := c.connector.prepareVirtual(query); ok || err != nil {
		return st, err
	}
	if err := c.connector.cfg.checkPooledSQL(query); err != nil {
		return nil, err
	}
	if !c.connector.cfg.preparesOnServer() {
		// AllowPreparedStatement=false, or the pooled host: nothing is prepared on the
		// server; the statement sends its SQL with every use, in the exec mode.
		return &unpreparedStmt{c: c, query: query}, nil
	}
	pg, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	return pg.PrepareContext(ctx, query)
}

func (c *Conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if rows, ok, err := c.connector.execVirtual(ctx, query, args); ok || err != nil {
		if err != nil {
			return nil, err
		}
		rows.Close()
		return driver.RowsAffected(0), nil
	}
	if err := c.connector.cfg.checkPooledSQL(query); err != nil {
		return nil, err
	}
	pg, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	res, err := pg.ExecContext(ctx, query, args)
	if err != nil {
		return nil, c.ended(ctx, err)
	}
	return res, nil
}

// ended turns the error of a statement whose session the server ended meanwhile
// into a *SessionEndedError: a FATAL 57P01/57P02, another FATAL that closed the
// session, or the connection lost mid-way (pgx closed it) while the statement's
// context was live. driver.ErrBadConn (pgx
// knows nothing was sent: database/sql retries on another session) and every
// other error are returned as they are.
func (c *Conn) ended(ctx context.Context, err error) error {
	if errors.Is(err, driver.ErrBadConn) || ctx != nil && ctx.Err() != nil {
		return err
	}
	closed := c.px != nil && c.px.IsClosed()
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 57P01/57P02, or any FATAL that ended the session (a pooler that lost
		// its server: PgBouncer's "server login has been failing").
		if pe.Code == "57P01" || pe.Code == "57P02" || pe.Severity == "FATAL" && closed {
			return &SessionEndedError{SQLState: pe.Code, Err: err}
		}
		return err
	}
	if closed {
		return &SessionEndedError{Err: err}
	}
	return err
}

func (c *Conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if rows, ok, err := c.connector.execVirtual(ctx, query, args); ok || err != nil {
		return rows, err
	}
	if err := c.connector.cfg.checkPooledSQL(query); err != nil {
		return nil, err
	}
	pg, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := pg.QueryContext(ctx, query, args)
	if err != nil {
		return nil, c.ended(ctx, err)
	}
	if max := c.connector.cfg.MaxRows; max > 0 {
		if r, ok := rows.(*stdlib.Rows); ok {
			return &cappedRows{Rows: r, left: max}, nil
		}
	}
	return rows, err
}

func (c *Conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx starts a transaction. When the session is not open yet, BEGIN is sent
// with the first statement that needs the database; a transaction that only runs
// virtual procedures never reaches Postgres.
//
// Per transaction it adds to pgx's own BeginTx only what the lazy session needs:
// the check that no transaction is open (database/sql never begins twice on one
// connection, but a caller of sql.Conn.Raw may), the isolation check (made here so
// a deferred BEGIN fails at BeginTx, as pgx's would), and the reused transaction
// object, which costs no allocation: pgx's own is begun without stdlib's wrapper
// (see begin), so a transaction allocates less than through pgx's stdlib.
func (c *Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.tx != nil {
		return nil, errors.New("lakebase: a transaction is already open on this connection")
	}
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault, sql.LevelReadUncommitted, sql.LevelReadCommitted,
		sql.LevelRepeatableRead, sql.LevelSnapshot, sql.LevelSerializable:
	default:
		return nil, fmt.Errorf("lakebase: unsupported isolation level %v", sql.IsolationLevel(opts.Isolation))
	}
	c.txState = lazyTx{c: c, ctx: ctx, opts: opts}
	t := &c.txState
	if c.pg != nil {
		if err := c.begin(t); err != nil {
			return nil, err
		}
	}
	c.tx = t
	return t, nil
}

func (c *Conn) Ping(ctx context.Context) error {
	pg, err := c.session(ctx)
	if err != nil {
		return err
	}
	return pg.Ping(ctx)
}

func (c *Conn) CheckNamedValue(nv *driver.NamedValue) error {
	// pgx takes sql.Scanner, driver.Valuer and its own types natively; so do the procedures.
	return nil
}

// ResetSession is called by database/sql on every checkout of a pooled connection,
// so it is the driver's hot path: it must cost what pgx's own costs. It reads a
// flag for the session's lifetime (set by a timer, not by a clock read here) and
// hands over to pgx's ResetSession, which discards a session left in a transaction,
// reads the clock once for the session's idle time (as it does for plain pgx) and
// asks the connector's shouldPing whether to ping (see pgsession.PingBeforeReuse): only a
// session idle longer than pgsession.LookAfterIdle is looked at, so that one the server ended
// is discarded before a statement is sent on it, and one idle over a second is
// pinged, as pgx does. A checkout of a session used within pgsession.LookAfterIdle makes no
// system call, map lookup or allocation beyond pgx's own.
func (c *Conn) ResetSession(ctx context.Context) error {
	if c.pg == nil {
		if c.closed {
			return driver.ErrBadConn
		}
		return nil
	}
	if c.expired.Load() {
		return driver.ErrBadConn // past its jittered lifetime
	}
	return c.pg.ResetSession(ctx)
}

// IsValid reports whether the connection may go back to the pool: database/sql
// asks on every return. pgx's stdlib has no IsValid (a closed session goes back
// and is dropped at its next checkout); here it is needed because a connection
// whose session is not open yet is valid although it has no pgx connection, and
// because database/sql keeps (rolls back and reuses) a connection whose
// transaction's context was cancelled, rather than closing it, only when the
// driver has both IsValid and ResetSession: a new session costs a login. A session
// pgx closed (a statement cancelled mid-way, a lost connection) is refused here.
// It reads two fields.
func (c *Conn) IsValid() bool {
	if c.closed {
		return false
	}
	return c.px == nil || !c.px.IsClosed()
}

func (c *Conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.ownsConnector {
		defer c.connector.Close()
	}
	if c.pg != nil {
		return c.pg.Close()
	}
	return nil
}

// lazyTx is a transaction whose BEGIN may wait for the session to open. One per
// connection is reused (Conn.txState); Commit and Rollback drop what it holds, so
// no context or transaction outlives its transaction.
type lazyTx struct {
	c        *Conn
	ctx      context.Context // BeginTx's: governs BEGIN, COMMIT and ROLLBACK, as in pgx
	opts     driver.TxOptions
	ptx      pgx.Tx    // pgx's transaction, once BEGIN was sent on pgx's session
	tx       driver.Tx // the transaction of a session that is not pgx's (unit tests)
	beginErr error     // the deferred BEGIN failed
}

// begun reports whether BEGIN was sent.
func (t *lazyTx) begun() bool { return t.ptx != nil || t.tx != nil }

// end forgets the transaction (the connection may begin another) and returns what
// Commit or Rollback needs of it.
func (t *lazyTx) end() (ctx context.Context, ptx pgx.Tx, tx driver.Tx, beginErr error) {
	t.c.tx = nil
	ctx, ptx, tx, beginErr = t.ctx, t.ptx, t.tx, t.beginErr
	t.ctx, t.ptx, t.tx, t.beginErr = nil, nil, nil, nil
	return ctx, ptx, tx, beginErr
}

func (t *lazyTx) Commit() error {
	ctx, ptx, tx, err := t.end()
	if err != nil {
		return err
	}
	switch {
	case ptx != nil:
		err = ptx.Commit(ctx) // what stdlib's wrapTx.Commit does
	case tx != nil:
		err = tx.Commit()
	}
	if err != nil {
		// A COMMIT whose session ended: the transaction may or may not have committed.
		return t.c.ended(ctx, err)
	}
	return nil
}

func (t *lazyTx) Rollback() error {
	ctx, ptx, tx, _ := t.end()
	switch {
	case ptx != nil:
		return ptx.Rollback(ctx) // what stdlib's wrapTx.Rollback does
	case tx != nil:
		return tx.Rollback()
	}
	return nil
}

// unpreparedStmt is a statement under AllowPreparedStatement=false: it runs its SQL
// through the connection on every use.
type unpreparedStmt struct {
	c     *Conn
	query string
}

func (s *unpreparedStmt) Close() error  { return nil }
func (s *unpreparedStmt) NumInput() int { return -1 }

func (s *unpreparedStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), namedValues(args))
}

func (s *unpreparedStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), namedValues(args))
}

func (s *unpreparedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *unpreparedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

// cappedRows is pgx's rows with at most MaxRows of them; the rest are discarded
// when the rows are closed. It keeps every optional interface of pgx's rows.
type cappedRows struct {
	*stdlib.Rows
	left int
}

func (r *cappedRows) Next(dest []driver.Value) error {
	if r.left <= 0 {
		return io.EOF
	}
	r.left--
	return r.Rows.Next(dest)
}
