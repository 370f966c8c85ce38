package pgsession

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// NextWakeDelay doubles the wait between the connects of waitAwake, up to
// RestartPoll while the server answers that it is starting or restarting
// (ComingBack: it is up again within seconds, so a client finds it back within
// half a second of that), else up to a second (a host that cannot be reached yet).
// The connects reuse the credential the wait began with: none is minted.
func NextWakeDelay(delay time.Duration, err error) time.Duration {
	limit := time.Second
	if ComingBack(err) {
		limit = RestartPoll
	}
	return min(delay*2, limit)
}

// RestartPoll is the longest wait between connects to a server that answers it is
// starting or restarting.
const RestartPoll = 500 * time.Millisecond

// ComingBack reports whether the server answered that it is starting up or
// restarting (a compute restart or failover, whatever its state reads): 57P03,
// 57P01 at login, or PgBouncer's "server login has been failing". Such a database
// is waited for; a refused dial to an up database is not.
func ComingBack(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "57P03" || pe.Code == "57P01" ||
		pe.Code == "08P01" && strings.Contains(pe.Message, "server login has been failing"))
}

// WakingState reports whether a database in state is on its way to taking
// connections: an endpoint scaled to zero (IDLE, SUSPENDED) or being made (INIT),
// an instance STARTING, UPDATING or FAILING_OVER. ACTIVE and AVAILABLE are up.
func WakingState(state string) bool {
	switch strings.ToUpper(state) {
	case "IDLE", "SUSPENDED", "INIT", "STARTING", "UPDATING", "FAILING_OVER":
		return true
	}
	return false
}

// MaxWake bounds the wait for a waking compute when Timeout sets no limit (the
// Databricks CLI's budget).
const MaxWake = 120 * time.Second

// ColdStartError reports whether err is what a compute that is waking up (or
// restarting, or failing over) answers.
func ColdStartError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08P01 (protocol violation) is a server that is up and refused what it was
		// sent: PgBouncer answers every refusal of its own so.
		// 57P01 at login: the server shut down while the session started (a restart
		// or failover); it is coming back.
		// PgBouncer's "server login has been failing, try again later" (08P01): its
		// server is down for the moment.
		return (strings.HasPrefix(pe.Code, "08") && pe.Code != "08P01") || pe.Code == "57P03" || pe.Code == "57P01" ||
			pe.Code == "08P01" && strings.Contains(pe.Message, "server login has been failing")
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// AuthFailureState returns the SQLSTATE of a refused login, or "". Through a pooled
// host it is also PgBouncer's own refusal of a password (08P01 "password
// authentication failed", or "SASL authentication failed").
func AuthFailureState(err error, pooled bool) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return ""
	}
	if pe.Code == "28P01" || pe.Code == "28000" {
		return pe.Code
	}
	if pooled && pe.Code == "08P01" && strings.HasSuffix(pe.Message, "authentication failed") {
		return pe.Code
	}
	return ""
}
