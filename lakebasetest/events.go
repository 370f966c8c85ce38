package lakebasetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The compute's events, on purpose: a restart (a configuration change, a resize of
// a fixed size), a failover (high availability: the primary's host name survives)
// and a suspend (scale to zero, Suspend). While the compute is down the front door
// (direct and pooled host) answers each login SQLSTATE 57P03, as the service's
// proxy does, and the data is kept: PostgreSQL is stopped and started again on the
// same data directory. The pooled host's PgBouncer is the compute's own, as on the
// service (the endpoint's pooler runs beside its PostgreSQL): it stops and starts
// with PostgreSQL, so it comes back with no memory of the downtime.

// Counters of the compute's events (Count).
const (
	EPComputeRestart = "compute.restart"  // RestartCompute calls that restarted the compute
	EPFailover       = "compute.failover" // Failover calls
	EPSessionKilled  = "session.killed"   // sessions a restart or failover ended with 57P01
)

// RestartCompute restarts the compute as Lakebase does for a configuration change:
// every session (direct and pooled host) ends with FATAL 57P01 "terminating
// connection due to administrator command", PostgreSQL stops (a fast shutdown) and
// stays down for downtime, during which new logins are answered 57P03 "the database
// system is starting up"; then it starts on the same data, the pooled host's
// PgBouncer (stopped with PostgreSQL) starts after it, and logins go through.
// It returns when the compute is back. Only one event runs at a time. Close
// during the downtime ends it: the event returns an error (context.Canceled).
func (s *Server) RestartCompute(downtime time.Duration) error {
	return s.computeEvent(EPComputeRestart, "the database system is starting up", downtime)
}

// Failover fails the compute over to its standby as Lakebase's high availability
// does: as RestartCompute (sessions end with 57P01, logins answered 57P03 "the
// database system is not yet accepting connections" for downtime, data kept), and
// meanwhile the Provisioned instance reports state FAILING_OVER. The host names do
// not change.
func (s *Server) Failover(downtime time.Duration) error {
	return s.computeEvent(EPFailover, "the database system is not yet accepting connections", downtime)
}

// ComputeDown reports whether a restart or failover is under way.
func (s *Server) ComputeDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down != ""
}

func (s *Server) computeEvent(kind, refusal string, downtime time.Duration) error {
	if downtime < 0 {
		return fmt.Errorf("lakebasetest: downtime %v: want 0 or more", downtime)
	}
	if s.pg == nil || !s.ownPG || !s.pg.Own() {
		return errors.New("lakebasetest: the compute can be restarted only when the emulator runs its own PostgreSQL (not HTTPOnly, not " + "LAKEBASE_TEST_POSTGRES)")
	}
	s.eventMu.Lock()
	defer s.eventMu.Unlock()
	if s.closing.Err() != nil { // (an event that waited for another may find it closed)
		return errors.New("lakebasetest: the emulator is closed")
	}
	// Under the relay gate: a session whose relay began before is ended below, and
	// none begins after (nothing reaches PostgreSQL or the pooler while it is down).
	s.relayGate.Lock()
	s.mu.Lock()
	s.down, s.downRefusal = kind, refusal
	s.mu.Unlock()
	s.relayGate.Unlock()
	defer func() {
		s.mu.Lock()
		s.down, s.downRefusal = "", ""
		s.mu.Unlock()
	}()
	s.count(kind)
	s.logf("compute: %s (down for %v)", kind, downtime)
	// The service's proxy ends the sessions; then the compute stops.
	s.fd.endAll("restart")
	if s.pfd != nil {
		s.pfd.endAll("restart")
	}
	// The downtime, and two minutes to start again; Close ends it (the largest
	// downtimes have no deadline: theirs would overflow).
	var (
		ctx    context.Context
		cancel context.CancelFunc
	)
	if downtime <= math.MaxInt64-2*time.Minute {
		ctx, cancel = context.WithTimeout(s.closing, downtime+2*time.Minute)
	} else {
		ctx, cancel = context.WithCancel(s.closing)
	}
	defer cancel()
	restart := func() error { return s.pg.Restart(ctx, downtime) }
	if s.pooler != nil {
		// The pooler is the compute's own, as on the service (the endpoint's
		// PgBouncer runs beside its PostgreSQL): it stops with PostgreSQL and starts
		// after it, a new process with no memory of server logins that failed while
		// PostgreSQL was away. (One that lived through the downtime would refuse
		// clients for server_login_retry afterwards, which the service's does not.)
		inner := restart
		restart = func() error { return s.pooler.Restart(ctx, inner) }
	}
	if err := restart(); err != nil {
		return fmt.Errorf("lakebasetest: %s: %w", kind, err)
	}

	s.logf("compute: back after %s", kind)
	return nil
}

// ActiveQueries counts the sessions of the emulator's PostgreSQL running query now
// (pg_stat_activity, state active, the query's text exactly): a test waits with it
// until a statement is in flight before an event.
func (s *Server) ActiveQueries(query string) (int, error) {
	if s.pg == nil {
		return 0, errors.New("lakebasetest: ActiveQueries needs PostgreSQL (the server is HTTPOnly)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, s.pg.AdminConnString("postgres"))
	if err != nil {
		return 0, err
	}
	defer pc.Close(context.Background())
	res := pc.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
		[][]byte{[]byte(query)}, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, res.Err
	}
	return strconv.Atoi(string(res.Rows[0][0]))
}
