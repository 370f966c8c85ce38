package lakebase

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/cache"
	"github.com/lakebase-go/lakebase/internal/httpx"
	"github.com/lakebase-go/lakebase/internal/pipeline"
	"github.com/lakebase-go/lakebase/internal/usertoken"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
	"github.com/lakebase-go/lakebase/workspace"
)

// ErrConfig is matched by every configuration error: errors.Is(err, lakebase.ErrConfig).
var ErrConfig = errors.New("lakebase: invalid configuration")

// ConfigError reports a connection-string property that is missing, unknown or malformed.
// Its message names the property and never holds the value of a secret property.
type ConfigError struct {
	Property string // canonical name, or the name as written when unknown
	Value    string // the offending value; empty for secrets
	Secret   bool
	Err      error
	// unknown: Property is a name that is no property (as written).
	unknown bool
}

// Error names the property and never holds a secret value.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("lakebase: connection string: ")
	if e.Property != "" {
		b.WriteString(e.Property)
		if e.Value != "" && !e.Secret {
			v := e.Value
			if len(v) > 80 {
				v = v[:80] + "..."
			}
			fmt.Fprintf(&b, "=%q", v)
		}
		b.WriteByte(' ')
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// Format prints Error for every verb (%#v included), so a secret Value never shows.
func (e *ConfigError) Format(f fmt.State, _ rune) { io.WriteString(f, e.Error()) }

// Is makes errors.Is(err, ErrConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// ErrLoginRefused is matched by a LoginError: errors.Is(err, lakebase.ErrLoginRefused).
var ErrLoginRefused = errors.New("lakebase: login refused")

// LoginError reports that Postgres refused the login even after a fresh credential
// was minted and the login retried once.
type LoginError struct {
	SQLState string // 28P01 or 28000 (08P01 from a pooled host's PgBouncer)
	User     string // the Postgres role the driver logged in as
	Host     string
	// PooledOAuth: the refusal came from a pooled host, to an OAuth database
	// credential. errors.Is(err, ErrPooledOAuthRefused) is then true too.
	PooledOAuth bool
	Err         error
}

// Error says who was refused where, and what to check.
func (e *LoginError) Error() string {
	hint := "check that the role exists on the database (a Lakebase role is needed for every identity) and that User names it"
	if strings.Contains(e.User, "@") {
		hint = "check that a Postgres role for this user exists on the database"
	}
	if e.PooledOAuth {
		hint = "the pooled host refused the OAuth database credential (Lakebase's pooler may accept native Postgres password roles only): " +
			"connect to the direct host (Pooled=false), or log in through the pooler as a native password role " +
			"(AuthScheme=Password;Pooled=true;Server=<the pooled host>;User=<role>;Password=...); if the pooler does take OAuth roles, " + hint
	}
	return fmt.Sprintf("lakebase: login as %q to %s refused (SQLSTATE %s): %s: %v", e.User, e.Host, e.SQLState, hint, e.Err)
}

// Unwrap returns the cause (a *pgconn.PgError).
func (e *LoginError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrLoginRefused) true, and ErrPooledOAuthRefused for a
// pooled host's refusal of an OAuth credential.
func (e *LoginError) Is(target error) bool {
	return target == ErrLoginRefused || (target == ErrPooledOAuthRefused && e.PooledOAuth)
}

// ErrEndpointDisabled: the Autoscaling endpoint is disabled (spec.disabled). A
// connect fails at once: a disabled endpoint does not wake.
var ErrEndpointDisabled = workspace.ErrEndpointDisabled

// ErrNoRole is matched by a NoRoleError: errors.Is(err, lakebase.ErrNoRole).
var ErrNoRole = errors.New("lakebase: the identity has no Postgres role")

// NoRoleError reports a login refused (28P01, twice, the second time with a fresh
// credential) because the identity has no Postgres role on the branch or instance,
// as the workspace's roles API says. Lakebase answers a missing role as if the
// password were wrong. Unknown: the roles could not be listed (403), so the role
// may be missing. It also matches ErrLoginRefused, and unwraps to the LoginError.
type NoRoleError struct {
	Identity string // the Postgres role the driver logged in as: application id, e-mail
	Where    string // "branch projects/<p>/branches/<b>" or "instance <name>"
	Unknown  bool
	Err      *LoginError
}

// Error names the identity, where, and the fixes.
func (e *NoRoleError) Error() string {
	kind := "SERVICE_PRINCIPAL"
	if strings.Contains(e.Identity, "@") {
		kind = "USER"
	}
	fix := fmt.Sprintf("create it with `lakebase role create %s` (the connection string's branch or instance; -branch for another), "+
		"give the Databricks App a database resource, or run `CREATE EXTENSION IF NOT EXISTS databricks_auth; SELECT databricks_create_role('%s', '%s')` as a database owner",
		e.Identity, e.Identity, kind)
	if e.Unknown {
		return fmt.Sprintf("lakebase: login as %q refused (SQLSTATE 28P01): the identity may have no Postgres role on %s (its roles could not be listed: "+
			"check with `lakebase role list` as an identity that may read them, or in the workspace's Lakebase roles page); if it is missing, %s: %v",
			e.Identity, e.Where, fix, e.Err.Err)
	}
	return fmt.Sprintf("lakebase: %q has no Postgres role on %s, and Lakebase answers that as a wrong password (SQLSTATE 28P01): %s: %v",
		e.Identity, e.Where, fix, e.Err.Err)
}

// Unwrap returns the LoginError.
func (e *NoRoleError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNoRole) true (when the role is known to be missing, or
// may be).
func (e *NoRoleError) Is(target error) bool { return target == ErrNoRole }

// ErrPooledOAuthRefused is matched by a LoginError from a pooled host that refused
// an OAuth database credential even freshly minted.
var ErrPooledOAuthRefused = errors.New("lakebase: the pooled host refused the OAuth credential")

// ErrPooledSessionLock is returned through database/sql on the pooled host for a
// statement that calls a session-level advisory lock function (pg_advisory_lock,
// pg_try_advisory_lock, their _shared forms and the unlocks; not the xact ones):
// PgBouncer in transaction mode hands the next transaction another server session,
// so the lock neither holds nor can be released, and two migrations could run at
// once. Nothing is sent. Only calls count, not names in literals or comments; SQL
// built inside the server (EXECUTE) is out of the check's reach.
var ErrPooledSessionLock = errors.New("lakebase: a session-level advisory lock cannot work through the pooled host")

// ErrUserToken is matched by the error of a person's token that the workspace
// refused (expired, revoked, or not a workspace token): errors.Is(err,
// lakebase.ErrUserToken). The call fails; the person's pool is left as it was.
// Permanent for that token: the person must sign in again.
var ErrUserToken = usertoken.ErrUserToken

// Errors the driver's sub-packages return, re-exported so callers need one import.
var (
	// ErrRedirect: an OAuth or workspace endpoint answered with a redirect, which is
	// never followed (every request carries a secret). Permanent.
	ErrRedirect = httpx.ErrRedirect
	// ErrNoKeyring: keyring:// was asked for and no OS keyring is reachable; use a
	// file. Permanent on this machine.
	ErrNoKeyring = settings.ErrNoKeyring
	// ErrResourceName: a project, branch, endpoint, operation or instance name breaks
	// the service's rule; nothing was sent. Permanent.
	ErrResourceName = workspace.ErrResourceName
	// ErrClosed: the Connector was closed while the call waited. Permanent.
	ErrClosed = cache.ErrClosed
	// ErrReloginRequired: the refresh token was refused (invalid_grant); a person must log in again.
	ErrReloginRequired = oauth.ErrReloginRequired
	// ErrNoToken: no usable token, and the InitiateOAuth mode forbids getting one.
	ErrNoToken = oauth.ErrNoToken
	// ErrSettingsFile: the OAuthSettingsLocation file cannot be used (it is left as it was).
	ErrSettingsFile = settings.ErrSettingsFile
	// ErrLockHeld: a wait for one of the settings store's locks ended without it —
	// the context ended, or the process holding the lock of a read-refresh-write
	// stopped renewing its lease (it is stopped or hung). The error names the lock
	// file and the holder's process. A retry helps once that process runs or ends.
	ErrLockHeld = settings.ErrLockHeld
	// ErrUntrustedIssuer: a host-agnostic login's callback named a workspace outside
	// the login host's domains; the login was not completed and nothing was sent.
	// Permanent for that callback: log in again.
	ErrUntrustedIssuer = oauth.ErrUntrustedIssuer
	// ErrRoleNotFound: no role of a branch or instance has exactly the name asked
	// for (Postgres role names are case-sensitive); the error (a RoleMatchError)
	// names the roles that differ only in case. Permanent: name the role exactly.
	ErrRoleNotFound = workspace.ErrRoleNotFound
	// ErrAmbiguousRole: more than one role could be meant by a name (several
	// differ from it only in case, and none has it exactly), so nothing was done;
	// the error (a RoleMatchError) names them. Permanent: name the role exactly.
	ErrAmbiguousRole = workspace.ErrAmbiguousRole
	// ErrRoleExists: a role create was answered ALREADY_EXISTS after the answer
	// of an earlier attempt (which may have made the role) was lost, and the role
	// there is not the one asked for, or could not be read back; the error (a
	// RoleExistsError) names the differences and the role was left as it is.
	// Permanent: look at the role before creating it again.
	ErrRoleExists = workspace.ErrRoleExists
	// ErrBranchExists: a branch create was answered ALREADY_EXISTS after the answer
	// of an earlier attempt (which may have made the branch) was lost, and the
	// branch there is not the one asked for (another source, made before the
	// create began, another lifetime, or deleted and made again while Wait polled
	// it), or could not be read back; the error (a BranchExistsError)
	// names the difference and the branch was left as it is. Permanent: look at
	// the branch before creating it again.
	ErrBranchExists = workspace.ErrBranchExists
)

type (
	// TokenError is an error of the workspace's OIDC token endpoint; Code holds the
	// RFC 6749 error code (invalid_client, invalid_grant, ...). It wraps x/oauth2's
	// *oauth2.RetrieveError when the endpoint answered.
	TokenError = oauth.TokenError
	// APIError is an error of a Databricks REST API, such as minting a credential.
	APIError = workspace.APIError
	// SettingsFileError reports an unusable OAuthSettingsLocation file.
	SettingsFileError = settings.SettingsFileError
	// LockHeldError names a settings store lock that could not be had and its holder.
	LockHeldError = settings.LockHeldError
	// IssuerError is a refused issuer of a host-agnostic login (errors.Is
	// ErrUntrustedIssuer); it names the issuer's host and why.
	IssuerError = oauth.IssuerError
	// RoleMatchError reports a role name that does not match exactly one role
	// (errors.Is ErrRoleNotFound or ErrAmbiguousRole); it names the candidates.
	RoleMatchError = workspace.RoleMatchError
	// RoleExistsError reports a retried role create answered ALREADY_EXISTS whose
	// role is not the one asked for (errors.Is ErrRoleExists).
	RoleExistsError = workspace.RoleExistsError
	// BranchExistsError reports a retried branch create answered ALREADY_EXISTS
	// whose branch is not the one asked for (errors.Is ErrBranchExists).
	BranchExistsError = workspace.BranchExistsError
)

// ErrNotAwake is matched by a WakeError.
var ErrNotAwake = errors.New("lakebase: the database did not wake up")

// WakeError reports a Lakebase database that kept refusing connections as a
// waking compute does (scale-to-zero) until the connect's deadline.
type WakeError struct {
	Database string // e.g. "endpoint projects/p/branches/b/endpoints/e"
	State    string // its state when looked up (IDLE for a suspended endpoint)
	Waited   time.Duration
	Err      error // the last connect error
}

// Error names the database, its state and how long it was waited for.
func (e *WakeError) Error() string {
	state := e.State
	if state == "" {
		state = "unknown"
	}
	return fmt.Sprintf("lakebase: %s (state %s) did not take connections within %v of waiting (raise Timeout if it wakes from scale-to-zero slowly): %v",
		e.Database, state, e.Waited, e.Err)
}

// Unwrap returns the last connect error.
func (e *WakeError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotAwake) true.
func (e *WakeError) Is(target error) bool { return target == ErrNotAwake }

// ErrHostRefused is matched by a HostRefusedError.
var ErrHostRefused = errors.New("lakebase: the database host refused connections")

// HostRefusedError reports a database host that could not be connected to (the
// connection was refused, or another dial error) while its endpoint or instance said it was up: no waking compute, so the connect
// gave up after a few tries. Check Server and Port (or Pooled), and the network.
type HostRefusedError struct {
	Host     string // host:port
	Database string // e.g. "endpoint projects/p/branches/b/endpoints/e"
	State    string // its state as the workspace reported it (ACTIVE, AVAILABLE, or "" when unknown)
	Attempts int    // connects tried
	Err      error  // the last connect error
}

// Error names the host and port, the database and its state.
func (e *HostRefusedError) Error() string {
	what := "refused connections"
	if !errors.Is(e.Err, syscall.ECONNREFUSED) {
		what = "could not be reached"
	}
	state := e.State
	if state == "" {
		state = "not reported"
	}
	return fmt.Sprintf("lakebase: %s %s (%d tries; %s is %s, so no compute is waking up): check Server and Port (the host is the one the workspace reports for the database unless Server names it), or the network: %v",
		e.Host, what, e.Attempts, e.Database, state, e.Err)
}

// Unwrap returns the last connect error.
func (e *HostRefusedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrHostRefused) true.
func (e *HostRefusedError) Is(target error) bool { return target == ErrHostRefused }

// ErrConnectorNotOpened is returned by the methods of a Connector that was not made
// by NewConnector or NewConnectorFromConfig (a zero Connector).
var ErrConnectorNotOpened = errors.New("lakebase: the Connector was not made by NewConnector or NewConnectorFromConfig")

// ErrCredential is matched by a failure to mint a database credential or to find
// the database: errors.Is(err, lakebase.ErrCredential).
var ErrCredential = pipeline.ErrCredential

// ErrNoPersonLogin is returned by the login steps (and the EXEC procedures that adapt
// them) under an AuthScheme that has no person to log in.
var ErrNoPersonLogin = errors.New("lakebase: the login steps need AuthScheme=OAuthPKCE or OAuthClient, the schemes that can log a person in")

// InputError reports a missing or wrong input of a login step.
type InputError struct {
	Input string
	Msg   string
}

// Error names the input.
func (e *InputError) Error() string { return "lakebase: " + e.Input + " " + e.Msg }

// ErrTooManyConnections is matched by a TooManyConnectionsError.
var ErrTooManyConnections = errors.New("lakebase: too many connections")

// TooManyConnectionsError reports a login refused because the database has as many
// connections as its compute allows (SQLSTATE 53300; 0.5 CU allows 104, 8 CU
// 1,678, at most 4,000). It is never retried as a waking compute.
type TooManyConnectionsError struct {
	Database string // the endpoint or instance (or host)
	Held     int    // sessions this process's connector holds open now
	Err      error  // the server's error
}

// Error names the database, the sessions held, and the fixes.
func (e *TooManyConnectionsError) Error() string {
	return fmt.Sprintf("lakebase: %s has as many connections as its compute allows (this process holds %d of them): "+
		"lower PoolMaxSize (or the pool's maximum) across your processes, connect through the pooled host (Pooled=true), "+
		"or give the endpoint a larger compute: %v", e.Database, e.Held, e.Err)
}

// Unwrap returns the server's error.
func (e *TooManyConnectionsError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrTooManyConnections) true.
func (e *TooManyConnectionsError) Is(target error) bool { return target == ErrTooManyConnections }

// ErrSessionEnded is matched by a SessionEndedError: errors.Is(err,
// lakebase.ErrSessionEnded).
var ErrSessionEnded = errors.New("lakebase: the server ended the session")

// SessionEndedError reports a statement that failed because the server ended its
// session while the statement was in flight: a compute restart or failover
// (SQLSTATE 57P01, "terminating connection due to administrator command"), a crash
// (57P02), another FATAL that closed the session (a pooler that lost its server:
// PgBouncer's 08P01 "server login has been failing"), or the connection lost with
// no word from the server (SQLState ""). The
// statement may or may not have run. The session is discarded; the pool's next
// statement logs in again, waiting for a compute that is coming back within
// Timeout. Retryable reports true: run the statement again if it is safe to run
// twice (a read, an idempotent write, a whole transaction). database/sql never
// retries it by itself.
type SessionEndedError struct {
	SQLState string // 57P01, 57P02, another FATAL's code, or "" for a connection lost without an error
	Err      error  // the server's *pgconn.PgError, or the connection's error
}

// Error says the session ended mid-statement, why when the server said, and what to do.
func (e *SessionEndedError) Error() string {
	why := "the connection was lost"
	switch e.SQLState {
	case "57P01":
		why = "SQLSTATE 57P01: the compute restarted, failed over or was shut down"
	case "57P02":
		why = "SQLSTATE 57P02: the server crashed"
	}
	return fmt.Sprintf("lakebase: the server ended the session while the statement was in flight (%s); "+
		"it may or may not have run: run it again on a new session if it is safe to run twice: %v", why, e.Err)
}

// Unwrap returns the cause (a *pgconn.PgError when the server said why).
func (e *SessionEndedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrSessionEnded) true.
func (e *SessionEndedError) Is(target error) bool { return target == ErrSessionEnded }

// Retryable reports whether making the same call again, unchanged, can succeed:
// the failure was of a moment or of a state that ends. It is the one place that
// sorts every error of this catalogue:
//
//   - can help: a compute that did not wake in time (ErrNotAwake), a full connection
//     limit (ErrTooManyConnections), a session the server ended or a connection
//     lost (ErrSessionEnded; SQLSTATE class 08, 57P01, 57P02, 57P03, driver.ErrBadConn), a
//     serialization failure or deadlock (40001, 40P01), a workspace or identity
//     provider that failed for a moment (an APIError or TokenError with 5xx, 429 or
//     no answer), a deadline that ran out;
//   - cannot help: everything that needs a change first — configuration
//     (ErrConfig, ErrResourceName), a refused login (ErrLoginRefused, ErrNoRole,
//     ErrPooledOAuthRefused), a role name that matches no role or more than one
//     (ErrRoleNotFound, ErrAmbiguousRole), a role or branch of the name asked that is
//     not the one asked (ErrRoleExists, ErrBranchExists), a refused or missing token (ErrReloginRequired,
//     ErrNoToken, an OAuth error code such as invalid_client), a disabled endpoint,
//     a refused redirect, the settings store or keyring, a closed connector, a
//     cancelled context, any other SQL error. The error's message says what to change.
//
// A statement that failed because its session ended may or may not have run: retry
// only what is safe to run twice (a read, an idempotent write, a whole transaction).
func Retryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrNotAwake), errors.Is(err, ErrTooManyConnections), errors.Is(err, ErrSessionEnded),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	for _, permanent := range []error{ErrConfig, ErrResourceName, ErrLoginRefused, ErrNoRole, ErrReloginRequired,
		ErrNoToken, ErrEndpointDisabled, ErrRedirect, ErrNoKeyring, ErrSettingsFile, ErrClosed,
		ErrConnectorNotOpened, ErrNoPersonLogin, ErrHostRefused, ErrPooledSessionLock, ErrUntrustedIssuer, ErrUserToken,
		ErrRoleNotFound, ErrAmbiguousRole, ErrRoleExists, ErrBranchExists} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300", "40001", "40P01":
			return true
		}
		return strings.HasPrefix(pe.Code, "08")
	}
	var te *TokenError
	if errors.As(err, &te) {
		return te.Code == "" && te.Temporary() || te.Code == "temporarily_unavailable" || te.Code == "server_error"
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	return pgconn.SafeToRetry(err)
}
