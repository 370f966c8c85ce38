package pgsession

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A login refused as a compute that is going down or coming back refuses it is
// waited for: 57P03, 57P01 (shutting down), PgBouncer's "server login has been
// failing"; PgBouncer's other 08P01 refusals (a wrong password) are not.
func TestColdStartError_WaitsForARestartingCompute(t *testing.T) {
	for _, tc := range []struct {
		code, msg string
		want      bool
	}{
		{"57P03", "the database system is starting up", true},
		{"57P01", "terminating connection due to administrator command", true},
		{"08P01", "server login has been failing, try again later (server_login_retry)", true},
		{"08P01", "password authentication failed", false},
		{"08006", "connection failure", true},
		{"28P01", "password authentication failed for user", false},
		{"53300", "sorry, too many clients already", false},
	} {
		err := fmt.Errorf("connect: %w", &pgconn.PgError{Severity: "FATAL", Code: tc.code, Message: tc.msg})
		if got := ColdStartError(err); got != tc.want {
			t.Errorf("ColdStartError(%s %s) = %v, want %v", tc.code, tc.msg, got, tc.want)
		}
	}
}

// The wait for a compute polls a server that answers it is starting or restarting
// (57P03, 57P01 at login, PgBouncer's "server login has been failing") at most half
// a second apart, so a client finds a restarted compute back within about that; a
// host that cannot be reached yet (a dial error, class 08) at most a second apart.
func TestWakeWait_PollsAServerThatSaysItIsStartingAtMostHalfASecondApart(t *testing.T) {
	pg := func(code, msg string) error {
		return fmt.Errorf("connect: %w", &pgconn.PgError{Severity: "FATAL", Code: code, Message: msg})
	}
	dial := fmt.Errorf("connect: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	for _, tc := range []struct {
		err   error
		limit time.Duration
	}{
		{pg("57P03", "the database system is starting up"), 500 * time.Millisecond},
		{pg("57P03", "the database system is not yet accepting connections"), 500 * time.Millisecond},
		{pg("57P01", "terminating connection due to administrator command"), 500 * time.Millisecond},
		{pg("08P01", "server login has been failing, try again later (server_login_retry)"), 500 * time.Millisecond},
		{pg("08006", "connection failure"), time.Second},
		{dial, time.Second},
	} {
		delay, most := 100*time.Millisecond, time.Duration(0)
		for i := 0; i < 20; i++ {
			delay = NextWakeDelay(delay, tc.err)
			most = max(most, delay)
		}
		if most != tc.limit || delay != tc.limit {
			t.Errorf("after %v: waits grow to %v (and stay at %v), want %v", tc.err, most, delay, tc.limit)
		}
	}
}
