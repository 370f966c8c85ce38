package lakebase

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/pipeline"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/workspace"
)

// EventKind is what an Event reports.
type EventKind string

const (
	// EventWorkspaceToken: a workspace OAuth token was fetched or refreshed (from
	// the identity provider, or taken from the settings store).
	EventWorkspaceToken EventKind = "workspace_token"
	// EventCredentialMint: a database credential was minted (API "autoscaling" or
	// "provisioned"); what Databricks' Node client calls a token refresh.
	EventCredentialMint EventKind = "credential_mint"
	// EventLogin: one Postgres login attempt (TLS, password, startup); ErrorCode is
	// the SQLSTATE of a refusal (53300 at the connection limit).
	EventLogin EventKind = "login"
	// EventRetry: the pipeline heals and tries again; Cause says why: "28P01" or
	// "28000" (a refused login, retried with a fresh credential), "wake" (a
	// waking compute), "connect" (a failed connect to a database that is not
	// waking, tried a few times), "401" or "403" (a refused workspace token).
	EventRetry EventKind = "retry"
	// EventWakeWait: a connect waited for a waking compute (Duration), and woke
	// (Outcome "ok") or gave up.
	EventWakeWait EventKind = "wake_wait"
	// EventStoreRead, EventStoreWrite: the settings store was read or written.
	EventStoreRead  EventKind = "store_read"
	EventStoreWrite EventKind = "store_write"
	// EventUserPoolOpen: UserPools opened a person's pool. EventUserPoolEvict: it
	// closed one; Cause is "idle" (unused for IdleTimeout) or "max_users" (the
	// least recently used beyond MaxUsers). Neither names the person.
	EventUserPoolOpen  EventKind = "user_pool_open"
	EventUserPoolEvict EventKind = "user_pool_evict"
)

// Outcomes of an Event.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// Event is one thing the login pipeline did. It never holds a secret: no token,
// credential, password or error message, only codes.
type Event struct {
	Kind   EventKind
	Scheme AuthScheme
	// Database is the endpoint or instance resource name ("" when not known yet),
	// API "autoscaling" or "provisioned" (credential mints), User the Postgres role
	// (logins).
	Database, API, User string
	Start               time.Time
	Duration            time.Duration
	// Expiry is the expiry of the token or credential obtained (of a login: of the
	// credential it logged in with; zero for a native password).
	Expiry  time.Time
	Outcome string // OutcomeOK or OutcomeError
	// Cause is why a retry happens; ErrorCode the failure's code: a SQLSTATE, an
	// HTTP status, an OAuth error code (invalid_client), or "timeout".
	Cause, ErrorCode string
}

// Observer is told what the login pipeline does: token fetches, credential
// mints, login attempts and their retries, wake waits, store reads and writes.
// OnEvent is called synchronously on the goroutine doing the work (ctx is its
// context: spans can be its children); it must be quick and safe for concurrent
// use. Queries never reach it: with no observer, and with one, a query costs what
// it did.
type Observer interface {
	OnEvent(ctx context.Context, e Event)
}

// ObserverFunc is a function as an Observer.
type ObserverFunc func(ctx context.Context, e Event)

// OnEvent calls f.
func (f ObserverFunc) OnEvent(ctx context.Context, e Event) { f(ctx, e) }

// WithObserver sends the login pipeline's events to o (the otel module wires them
// to OpenTelemetry). Several observers may be given; each gets every event.
func WithObserver(o Observer) Option {
	return func(opts *options) {
		if o != nil {
			opts.observers = append(opts.observers, o)
		}
	}
}

// observers is a connector's observers.
type observers []Observer

// emit tells every observer of e, filling in its outcome from err.
func (os observers) emit(ctx context.Context, e Event, err error) {
	if len(os) == 0 {
		return
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
		if err != nil {
			e.Outcome, e.ErrorCode = OutcomeError, errorCode(err)
		}
	}
	for _, o := range os {
		o.OnEvent(ctx, e)
	}
}

// pipelineEvent tells the observers what the token pipeline did.
func (c *Connector) pipelineEvent(ctx context.Context, e pipeline.Event, err error) {
	c.opts.observers.emit(ctx, Event{Kind: EventKind(e.Kind), Scheme: c.cfg.AuthScheme, Database: e.Database, API: e.API,
		Cause: e.Cause, Start: e.Start, Duration: e.Duration, Expiry: e.Expiry}, err)
}

// errorCode is the code of err, never its message.
func errorCode(err error) string {
	var pe *pgconn.PgError
	var ae *workspace.APIError
	var te *oauth.TokenError
	switch {
	case errors.As(err, &pe):
		return pe.Code
	case errors.As(err, &te) && te.Code != "":
		return te.Code
	case errors.As(err, &te) && te.StatusCode != 0:
		return strconv.Itoa(te.StatusCode)
	case errors.As(err, &ae) && ae.StatusCode != 0:
		return strconv.Itoa(ae.StatusCode)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "unknown"
}

// ConnectorStats are the connector's sessions now, for pool metrics on demand.
type ConnectorStats struct {
	// Open is how many Postgres sessions of this connector's database/sql
	// connections are open; Connecting how many logins are under way (connections
	// being made, which callers wait for).
	Open, Connecting int
}

// Stats reports the connector's sessions now.
func (c *Connector) Stats() ConnectorStats {
	return ConnectorStats{Open: int(c.sessions.Load()), Connecting: int(c.connecting.Load())}
}
