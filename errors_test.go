package lakebase

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRetryable_SaysWhetherTheSameCallCanSucceed(t *testing.T) {
	_, configErr := ParseDSN("AuthScheme=Nope")
	if configErr == nil {
		t.Fatal("a bad AuthScheme parsed")
	}
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"a configuration error", configErr, false},
		{"a resource name", ErrResourceName, false},
		{"a waking compute", &WakeError{Database: "endpoint e", Err: errors.New("57P03")}, true},
		{"a full connection limit", &TooManyConnectionsError{Err: pg("53300")}, true},
		{"a refused login", &LoginError{SQLState: "28P01", Err: pg("28P01")}, false},
		{"no role", &NoRoleError{Err: &LoginError{SQLState: "28P01"}}, false},
		{"a pooled host refusing OAuth", &LoginError{SQLState: "08P01", PooledOAuth: true}, false},
		{"a refresh token refused", &TokenError{Op: "refresh_token", Code: "invalid_grant", StatusCode: 400}, false},
		{"a wrong client secret", &TokenError{Code: "invalid_client", StatusCode: 401}, false},
		{"an identity provider down", &TokenError{StatusCode: http.StatusServiceUnavailable}, true},
		{"an identity provider busy", &TokenError{Code: "temporarily_unavailable", StatusCode: 400}, true},
		{"a workspace API down", &APIError{Op: "mint", StatusCode: 502}, true},
		{"a workspace API throttling", &APIError{Op: "mint", StatusCode: 429}, true},
		{"a workspace API refusing", &APIError{Op: "mint", StatusCode: 403, ErrorCode: "PERMISSION_DENIED"}, false},
		{"a disabled endpoint", fmt.Errorf("%w: e", ErrEndpointDisabled), false},
		{"a refused host of an endpoint that is up", &HostRefusedError{Host: "h:1", State: "ACTIVE", Err: errors.New("connection refused")}, false},
		{"a redirect", fmt.Errorf("post: %w", ErrRedirect), false},
		{"a closed connector", ErrClosed, false},
		{"the server ended the session", pg("57P01"), true},
		{"a statement whose session ended", &SessionEndedError{SQLState: "57P01", Err: pg("57P01")}, true},
		{"a statement whose connection was lost", &SessionEndedError{Err: errors.New("unexpected EOF")}, true},
		{"the server crashed", pg("57P02"), true},
		{"a connection failure", pg("08006"), true},
		{"a serialization failure", pg("40001"), true},
		{"a deadlock", pg("40P01"), true},
		{"a syntax error", pg("42601"), false},
		{"a unique violation", pg("23505"), false},
		{"a bad connection", fmt.Errorf("x: %w", driver.ErrBadConn), true},
		{"a deadline", context.DeadlineExceeded, true},
		{"a cancellation", context.Canceled, false},
		{"a session lock on the pooled host", ErrPooledSessionLock, false},
		{"no role of that exact name", &RoleMatchError{Name: "robert", Candidates: []string{"Robert"}}, false},
		{"a role name more than one role could mean", &RoleMatchError{Name: "ROBERT", Candidates: []string{"Robert", "robert"}, Ambiguous: true}, false},
		{"anything else", errors.New("boom"), false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// A session the server ended while a statement ran says so, stays a PgError for
// errors.As, and names no secret of the statement's arguments (it holds none).
func TestSessionEndedError_SaysTheSessionEndedAndUnwraps(t *testing.T) {
	pe := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	err := fmt.Errorf("exec: %w", &SessionEndedError{SQLState: "57P01", Err: pe})
	var got *pgconn.PgError
	if !errors.Is(err, ErrSessionEnded) || !errors.As(err, &got) || got != pe {
		t.Fatalf("%v: not ErrSessionEnded, or the PgError is lost", err)
	}
	for _, want := range []string{"ended the session while the statement was in flight", "57P01", "may or may not have run"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
