package main

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

func TestOTel_TracesEveryQueryOfTheConnector(t *testing.T) {
	demo.Check(t, run, `span "COMMIT" parent=true`)
}

// Every statement of the transaction is a span, a child of the caller's span, with
// the SQL and the database system on it; no span is left unended.
func TestSpansAreChildrenOfTheRequest(t *testing.T) {
	emu := lakebasetest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tp := trace.NewTracerProvider(trace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	if err := query(context.Background(), emu.OAuthClientDSN(), tp); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	var request *tracetest.SpanStub
	for i := range spans {
		if spans[i].Name == "handle-request" {
			request = &spans[i]
		}
	}
	if request == nil {
		t.Fatalf("no request span among %d", len(spans))
	}
	var statements []string
	for _, s := range spans {
		if s.Name == "handle-request" {
			continue
		}
		if s.SpanContext.TraceID() != request.SpanContext.TraceID() {
			t.Errorf("span %q is in another trace", s.Name)
		}
		if s.EndTime.IsZero() {
			t.Errorf("span %q never ended", s.Name)
		}
		for _, a := range s.Attributes {
			if a.Key == "db.statement" || a.Key == "db.query.text" {
				statements = append(statements, a.Value.AsString())
			}
		}
	}
	all := strings.Join(statements, "\n")
	for _, want := range []string{"begin", "SELECT count(*) FROM generate_series(1, $1::int)", "set_config", "commit"} {
		if !strings.Contains(strings.ToLower(all), strings.ToLower(want)) {
			t.Errorf("no span for %q among:\n%s", want, all)
		}
	}
	if strings.Contains(all, "GetOAuth") {
		t.Error("a virtual procedure reached pgx")
	}
}
