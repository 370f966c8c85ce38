// Package pgsession holds what the driver knows of a PostgreSQL session beside pgx:
// whether the server has ended an idle one (a look at its socket, no round trip),
// and what a refused login says of the server (waking, restarting, refusing a
// password).
package pgsession

import (
	"crypto/tls"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// LookAfterIdle is how long a pooled session sits idle before it is looked at (a
// recvfrom with MSG_PEEK, no round trip) on its way out of the pool. Sessions idle
// over PgxPingIdle are pinged as well, as plain pgx pings them.
//
// Why a threshold, and why this one: database/sql resets a session on every
// checkout and pgxpool asks on every acquire, so a look on each costs a system call
// per query (about 6% of the client's CPU for SELECT 1). Within the threshold
// nothing is looked at, as plain pgx looks at nothing within a second. This is safe:
// the server ends sessions that sit idle (Lakebase's 24-hour idle timeout, its
// 3-day lifetime taken at an idle moment, a compute suspended for inactivity) or at
// moments nobody chooses (a restart). Idle is what pgx measures: for database/sql
// the time since the session's previous checkout, for pgxpool since its release,
// never less than the time since its last use. A session reused within 100 ms
// whose end fell in that window is rare, and it fails its next statement exactly
// as it would through plain pgx: pgconn reads the server's FATAL (57P01
// admin_shutdown) or the closed socket, the error is classified like any other
// (Retryable reports a session the server ended as worth retrying), and
// database/sql and pgxpool discard the closed session. Sessions idle longer are
// discarded before any statement is sent, as before. A session used every 100 ms or more rarely pays one look per checkout:
// at most ten system calls a second per session.
const LookAfterIdle = 100 * time.Millisecond

// PgxPingIdle is pgx's own rule (stdlib and pgxpool): ping a session idle longer
// than a second before reusing it.
const PgxPingIdle = time.Second

// PingBeforeReuse decides, for database/sql (stdlib's ShouldPing) and pgxpool
// (pgxpool's ShouldPing), whether a session idle for idle is pinged before reuse:
// pgx's rule (idle over a second), or, for a session idle over lookAfter, a look
// that finds the server ended it (the ping then fails at once on the closed
// connection and the pool discards the session). It reads no clock: idle is the
// one pgx measured. Within lookAfter it does nothing at all.
func PingBeforeReuse(pc *pgconn.PgConn, idle, lookAfter time.Duration) bool {
	if idle > PgxPingIdle {
		return true // the ping finds an ended session too
	}
	return idle > lookAfter && ServerEnded(pc)
}

// ServerEnded reports, without sending anything and without waiting, whether the
// server has ended an idle session: its socket has data waiting (an idle session
// is sent nothing but the error of its end, a notice or a notification, which
// pgconn then reads) and pgconn finds it closed, or the socket is at its end.
func ServerEnded(pc *pgconn.PgConn) bool {
	if pc == nil || pc.IsClosed() {
		return pc != nil
	}
	if pc.IsBusy() {
		return false // a read or write under way is pgx's to finish
	}
	// The peeker is made once per session and kept with it: a look allocates nothing.
	pk, _ := pc.CustomData()[peekerKey].(*peeker)
	if pk == nil {
		conn := pc.Conn()
		if tc, ok := conn.(*tls.Conn); ok {
			conn = tc.NetConn()
		}
		pk = newPeeker(conn)
		pc.CustomData()[peekerKey] = pk
	}
	switch pk.peek() {
	case peekEOF:
		return true
	case peekData:
		pc.CheckConn() // reads what waits: a FATAL closes the connection
		return pc.IsClosed() || pk.peek() == peekEOF
	}
	return false
}

// peekerKey holds a session's peeker in its pgconn CustomData.
const peekerKey = "lakebase.peeker"

type peekResult int

const (
	peekNothing peekResult = iota // alive, nothing waiting (or cannot tell)
	peekData                      // bytes are waiting
	peekEOF                       // the peer closed the socket
)
