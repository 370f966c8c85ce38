// Package otel wires the lakebase driver's observer hook to OpenTelemetry:
// metrics under the meter name "@databricks/lakebase", with the names Databricks'
// Node client (@databricks/lakebase) uses where they mean the same thing, and
// spans of each credential mint ("lakebase.token.refresh", as that client names
// it), workspace token fetch and login. It is a module of its own, so the driver's
// go.mod stays free of OpenTelemetry.
//
//	tel, _ := otel.New(otel.WithMeterProvider(mp), otel.WithTracerProvider(tp))
//	c, _ := lakebase.NewConnector(dsn, tel.Options()...)
//	db := lakebase.OpenDB(c)
//	reg, _ := tel.ObserveDB(db, c) // pool gauges; reg.Unregister() when done
//
// Metrics (histograms in milliseconds):
//
//	lakebase.token.refresh.duration   credential mints (the Node client's "token refresh")
//	lakebase.query.duration           queries (through pgx's tracer)
//	lakebase.pool.connections.total   sessions open
//	lakebase.pool.connections.idle    idle sessions
//	lakebase.pool.connections.waiting connections being made that callers wait for
//	lakebase.pool.errors              refused or failed logins, by error.code
//	lakebase.oauth.token.duration     workspace OAuth token fetches and refreshes
//	lakebase.credential.mints         credential mints, by API and outcome
//	lakebase.login.duration           Postgres logins
//	lakebase.login.retries            retries, by lakebase.retry.cause (28P01, 28000, wake, 401, 403)
//	lakebase.wake.duration            waits for a waking compute
//	lakebase.store.duration           settings store reads and writes
//
// No attribute or event carries a token, secret, password or statement text.
package otel

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakebase-go/lakebase"
)

// ScopeName is the meter and tracer name, the Node client's.
const ScopeName = "@databricks/lakebase"

// Option configures New.
type Option func(*config)

type config struct {
	mp      metric.MeterProvider
	tp      trace.TracerProvider
	tracers []pgx.QueryTracer
}

// WithMeterProvider sets the meter provider (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithTracerProvider sets the tracer provider (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithQueryTracers adds pgx query tracers (otelpgx.NewTracer(), say) to run beside
// the one that records lakebase.query.duration: Options sets them all as the
// sessions' tracer.
func WithQueryTracers(t ...pgx.QueryTracer) Option {
	return func(c *config) { c.tracers = append(c.tracers, t...) }
}

// Telemetry records the driver's events as metrics and spans. It is a
// lakebase.Observer.
type Telemetry struct {
	meter  metric.Meter
	tracer trace.Tracer
	extra  []pgx.QueryTracer

	refresh, query, oauthToken, login, wake, store metric.Float64Histogram
	mints, retries, poolErrors                     metric.Int64Counter
}

// New makes the instruments.
func New(opts ...Option) (*Telemetry, error) {
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.mp == nil {
		cfg.mp = otelapi.GetMeterProvider()
	}
	if cfg.tp == nil {
		cfg.tp = otelapi.GetTracerProvider()
	}
	t := &Telemetry{meter: cfg.mp.Meter(ScopeName), tracer: cfg.tp.Tracer(ScopeName), extra: cfg.tracers}
	var errs []error
	hist := func(name, desc string) metric.Float64Histogram {
		h, err := t.meter.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("ms"))
		errs = append(errs, err)
		return h
	}
	count := func(name, desc string) metric.Int64Counter {
		c, err := t.meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("1"))
		errs = append(errs, err)
		return c
	}
	t.refresh = hist("lakebase.token.refresh.duration", "Duration of database credential mints (OAuth token refresh operations)")
	t.query = hist("lakebase.query.duration", "Duration of queries")
	t.oauthToken = hist("lakebase.oauth.token.duration", "Duration of workspace OAuth token fetches and refreshes")
	t.login = hist("lakebase.login.duration", "Duration of Postgres logins")
	t.wake = hist("lakebase.wake.duration", "Time connects waited for a waking compute")
	t.store = hist("lakebase.store.duration", "Duration of settings store reads and writes")
	t.mints = count("lakebase.credential.mints", "Database credential mints")
	t.retries = count("lakebase.login.retries", "Retries of the login pipeline, by cause")
	t.poolErrors = count("lakebase.pool.errors", "Connection pool errors by error code")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Options returns the connector options that feed t: the observer, and a pgx
// query tracer (with WithQueryTracers' beside it) on every session.
func (t *Telemetry) Options() []lakebase.Option {
	var tracer pgx.QueryTracer = queryTracer{t}
	if len(t.extra) > 0 {
		tracer = multitracer.New(append([]pgx.QueryTracer{tracer}, t.extra...)...)
	}
	return []lakebase.Option{
		lakebase.WithObserver(t),
		lakebase.WithPgxConfig(func(cc *pgx.ConnConfig) { cc.Tracer = tracer }),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// OnEvent records one event of the driver.
func (t *Telemetry) OnEvent(ctx context.Context, e lakebase.Event) {
	outcome := attribute.String("lakebase.outcome", e.Outcome)
	end := e.Start.Add(e.Duration)
	switch e.Kind {
	case lakebase.EventCredentialMint:
		attrs := []attribute.KeyValue{attribute.String("lakebase.endpoint", e.Database), attribute.String("lakebase.api", e.API), outcome}
		t.refresh.Record(ctx, ms(e.Duration), metric.WithAttributes(attrs...))
		t.mints.Add(ctx, 1, metric.WithAttributes(attrs...))
		if !e.Expiry.IsZero() && e.Outcome == lakebase.OutcomeOK {
			attrs = append(attrs, attribute.String("lakebase.token.expires_at", e.Expiry.UTC().Format(time.RFC3339Nano)))
		}
		t.span(ctx, "lakebase.token.refresh", e, end, attrs...)
	case lakebase.EventWorkspaceToken:
		attrs := []attribute.KeyValue{attribute.String("lakebase.auth_scheme", string(e.Scheme)), outcome}
		t.oauthToken.Record(ctx, ms(e.Duration), metric.WithAttributes(attrs...))
		if !e.Expiry.IsZero() {
			attrs = append(attrs, attribute.String("lakebase.token.expires_at", e.Expiry.UTC().Format(time.RFC3339Nano)))
		}
		t.span(ctx, "lakebase.oauth.token", e, end, attrs...)
	case lakebase.EventLogin:
		t.login.Record(ctx, ms(e.Duration), metric.WithAttributes(outcome))
		attrs := []attribute.KeyValue{attribute.String("lakebase.endpoint", e.Database), attribute.String("db.user", e.User), outcome}
		if e.Outcome != lakebase.OutcomeOK {
			t.poolErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("error.code", e.ErrorCode)))
		}
		t.span(ctx, "lakebase.login", e, end, attrs...)
	case lakebase.EventRetry:
		cause := attribute.String("lakebase.retry.cause", e.Cause)
		t.retries.Add(ctx, 1, metric.WithAttributes(cause))
		trace.SpanFromContext(ctx).AddEvent("lakebase.retry", trace.WithAttributes(cause))
	case lakebase.EventWakeWait:
		t.wake.Record(ctx, ms(e.Duration), metric.WithAttributes(outcome))
		t.span(ctx, "lakebase.wake", e, end, attribute.String("lakebase.endpoint", e.Database), outcome)
	case lakebase.EventStoreRead, lakebase.EventStoreWrite:
		op := "read"
		if e.Kind == lakebase.EventStoreWrite {
			op = "write"
		}
		t.store.Record(ctx, ms(e.Duration), metric.WithAttributes(attribute.String("lakebase.store.op", op), outcome))
	}
}

// span records a finished operation as a span, a child of ctx's.
func (t *Telemetry) span(ctx context.Context, name string, e lakebase.Event, end time.Time, attrs ...attribute.KeyValue) {
	_, sp := t.tracer.Start(ctx, name, trace.WithTimestamp(e.Start), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	if e.Outcome == lakebase.OutcomeOK {
		sp.SetStatus(codes.Ok, "")
	} else {
		sp.SetAttributes(attribute.String("error.code", e.ErrorCode))
		sp.SetStatus(codes.Error, e.ErrorCode)
	}
	sp.End(trace.WithTimestamp(end))
}

// queryTracer records lakebase.query.duration for every query of the sessions.
type queryTracer struct{ t *Telemetry }

type queryStartKey struct{}

type queryStart struct {
	at time.Time
	op string
}

func (q queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), op: operation(data.SQL)})
}

func (q queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	st, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok {
		return
	}
	outcome := lakebase.OutcomeOK
	attrs := []attribute.KeyValue{attribute.String("db.operation", st.op)}
	if data.Err != nil {
		outcome = lakebase.OutcomeError
		var pe *pgconn.PgError
		if errors.As(data.Err, &pe) {
			attrs = append(attrs, attribute.String("error.code", pe.Code))
		}
	}
	attrs = append(attrs, attribute.String("lakebase.outcome", outcome))
	q.t.query.Record(ctx, ms(time.Since(st.at)), metric.WithAttributes(attrs...))
}

// operation is a statement's first keyword (SELECT, INSERT, ...): never its text,
// which may hold a literal secret.
func operation(sql string) string {
	sql = strings.TrimSpace(sql)
	end := strings.IndexFunc(sql, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') })
	if end < 0 {
		end = len(sql)
	}
	if end == 0 || end > 16 {
		return "OTHER"
	}
	return strings.ToUpper(sql[:end])
}

// ObserveDB reports the pool gauges of a database/sql pool opened on c
// (lakebase.OpenDB): total and idle sessions from db.Stats, waiting from the
// connector's logins under way.
func (t *Telemetry) ObserveDB(db *sql.DB, c *lakebase.Connector) (metric.Registration, error) {
	return t.observe(func() (total, idle, waiting int64) {
		s := db.Stats()
		if c != nil {
			waiting = int64(c.Stats().Connecting)
		}
		return int64(s.OpenConnections), int64(s.Idle), waiting
	})
}

// ObservePool reports the pool gauges of a pgxpool (Connector.PoolConfig): total,
// idle, and connections being made.
func (t *Telemetry) ObservePool(p *pgxpool.Pool) (metric.Registration, error) {
	return t.observe(func() (int64, int64, int64) {
		s := p.Stat()
		return int64(s.TotalConns()), int64(s.IdleConns()), int64(s.ConstructingConns())
	})
}

func (t *Telemetry) observe(read func() (total, idle, waiting int64)) (metric.Registration, error) {
	total, err1 := t.meter.Int64ObservableGauge("lakebase.pool.connections.total", metric.WithDescription("Total connections in the pool"))
	idle, err2 := t.meter.Int64ObservableGauge("lakebase.pool.connections.idle", metric.WithDescription("Idle connections in the pool"))
	waiting, err3 := t.meter.Int64ObservableGauge("lakebase.pool.connections.waiting", metric.WithDescription("Connections being made that callers wait for"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		tot, idl, wait := read()
		o.ObserveInt64(total, tot)
		o.ObserveInt64(idle, idl)
		o.ObserveInt64(waiting, wait)
		return nil
	}, total, idle, waiting)
}
