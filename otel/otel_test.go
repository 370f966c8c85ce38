package otel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	lbotel "github.com/lakebase-go/lakebase/otel"
)

// collect reads every metric the reader holds, by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != lbotel.ScopeName {
			t.Fatalf("meter %q, want %q", sm.Scope.Name, lbotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sumWith is the sum of an Int64 counter's points that have attribute kv.
func sumWith(m metricdata.Metrics, kv attribute.KeyValue) int64 {
	var n int64
	if s, ok := m.Data.(metricdata.Sum[int64]); ok {
		for _, p := range s.DataPoints {
			if v, ok := p.Attributes.Value(kv.Key); ok && v == kv.Value {
				n += p.Value
			}
		}
	}
	return n
}

// histCount is how many values a histogram recorded.
func histCount(m metricdata.Metrics) uint64 {
	var n uint64
	if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
		for _, p := range h.DataPoints {
			n += p.Count
		}
	}
	return n
}

// Through a real login against the emulator, with the OpenTelemetry SDK's
// in-memory reader and exporter: a credential mint (the Node client's token
// refresh), a 28P01 heal and a wake each show up with the right names and
// attributes, queries are timed, the pool gauges report, and no attribute or
// event carries a token, secret or password.
func TestTelemetry_RefreshHealAndWakeWithTheOfficialNames(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL: not run with -short")
	}
	e := lakebasetest.Start(t, lakebasetest.Options{ScaleToZero: time.Hour, WakeDelay: time.Second})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tel, err := lbotel.New(lbotel.WithMeterProvider(mp), lbotel.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	c, err := lakebase.NewConnector(e.OAuthClientDSN("Timeout=120"), tel.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := lakebase.OpenDB(c)
	defer db.Close()
	reg, err := tel.ObserveDB(db, c)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	db.SetMaxIdleConns(0) // every Ping logs in

	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := db.QueryRow("SELECT $1::int", 1).Scan(&one); err != nil {
		t.Fatal(err)
	}
	e.RevokeAllCredentials()
	if err := db.Ping(); err != nil {
		t.Fatalf("the 28P01 heal: %v", err)
	}
	e.Suspend()
	if err := db.Ping(); err != nil {
		t.Fatalf("the wake: %v", err)
	}
	held, _ := db.Conn(context.Background()) // one session open for the gauges
	defer held.Close()
	held.PingContext(context.Background())

	ms := collect(t, reader)
	for _, name := range []string{"lakebase.token.refresh.duration", "lakebase.query.duration", "lakebase.oauth.token.duration",
		"lakebase.login.duration", "lakebase.wake.duration", "lakebase.pool.connections.total", "lakebase.pool.connections.idle",
		"lakebase.pool.connections.waiting", "lakebase.pool.errors", "lakebase.credential.mints", "lakebase.login.retries"} {
		if _, ok := ms[name]; !ok {
			t.Errorf("no metric %s", name)
		}
	}
	if n := histCount(ms["lakebase.token.refresh.duration"]); n != 2 {
		t.Errorf("lakebase.token.refresh.duration recorded %d mints, want 2 (the first, and the one after the revocation)", n)
	}
	if h := ms["lakebase.token.refresh.duration"].Unit; h != "ms" {
		t.Errorf("unit %q", h)
	}
	if n := sumWith(ms["lakebase.login.retries"], attribute.String("lakebase.retry.cause", "28P01")); n != 1 {
		t.Errorf("%d 28P01 retries", n)
	}
	if n := sumWith(ms["lakebase.login.retries"], attribute.String("lakebase.retry.cause", "wake")); n != 1 {
		t.Errorf("%d wake retries", n)
	}
	if n := sumWith(ms["lakebase.pool.errors"], attribute.String("error.code", "28P01")); n != 1 {
		t.Errorf("lakebase.pool.errors{error.code=28P01} = %d", n)
	}
	if n := histCount(ms["lakebase.query.duration"]); n == 0 {
		t.Error("no query was timed")
	}
	if g, ok := ms["lakebase.pool.connections.total"].Data.(metricdata.Gauge[int64]); !ok || len(g.DataPoints) == 0 || g.DataPoints[0].Value < 1 {
		t.Errorf("lakebase.pool.connections.total: %+v", ms["lakebase.pool.connections.total"].Data)
	}

	var refresh, login, wake int
	for _, s := range spans.GetSpans() {
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes {
			attrs[a.Key] = a.Value
		}
		switch s.Name {
		case "lakebase.token.refresh":
			refresh++
			if attrs["lakebase.endpoint"].AsString() != e.Endpoint {
				t.Errorf("lakebase.token.refresh lakebase.endpoint = %q", attrs["lakebase.endpoint"].AsString())
			}
			if exp, err := time.Parse(time.RFC3339Nano, attrs["lakebase.token.expires_at"].AsString()); err != nil || exp.Before(time.Now()) {
				t.Errorf("lakebase.token.refresh lakebase.token.expires_at = %q", attrs["lakebase.token.expires_at"].AsString())
			}
		case "lakebase.login":
			login++
		case "lakebase.wake":
			wake++
		}
	}
	if refresh != 2 || login < 4 || wake != 1 {
		t.Errorf("spans: %d lakebase.token.refresh, %d lakebase.login, %d lakebase.wake", refresh, login, wake)
	}

	// Nothing secret anywhere: every attribute and event of every span and metric.
	var all strings.Builder
	for _, s := range spans.GetSpans() {
		fmt.Fprintf(&all, "%v %v %v\n", s.Name, s.Attributes, s.Events)
	}
	for _, m := range ms {
		fmt.Fprintf(&all, "%v %+v\n", m.Name, m.Data)
	}
	secrets := append(e.IssuedSecrets(), e.ServicePrincipal.ClientSecret)
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Fatal("telemetry holds a secret")
		}
	}
}
