package lakebase

import (
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lakebase-go/lakebase/internal/pgsession"
)

// Hooks for the package's external tests.

// LookAfterIdle is pgsession.LookAfterIdle: how long a pooled session sits idle before it is
// looked at on reuse.
const LookAfterIdle = pgsession.LookAfterIdle

// SetLookAfterIdle sets how long c's pooled sessions sit idle before they are
// looked at on reuse. Call it before c opens a session.
func SetLookAfterIdle(c *Connector, d time.Duration) { c.lookAfter = d }

// PingBeforeReuse is what database/sql and pgxpool decide, with c's threshold, for
// a session idle for idle on its way out of the pool.
func PingBeforeReuse(c *Connector, pc *pgconn.PgConn, idle time.Duration) bool {
	return pgsession.PingBeforeReuse(pc, idle, c.lookAfter)
}
