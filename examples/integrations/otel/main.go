// Command otel traces every query through the driver with OpenTelemetry: otelpgx is
// pgx's tracer, and lakebase.WithPgxConfig puts it on every session the connector
// opens. Spans are children of the caller's span, as in any pgx service.
//
// A real service exports to a collector (otlptrace); this example records spans in
// memory and prints them, so it runs anywhere.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func main() { demo.Main(run) }

func run(ctx context.Context, dsn string, out io.Writer) error {
	exp := tracetest.NewInMemoryExporter()
	tp := trace.NewTracerProvider(trace.WithSyncer(exp))
	defer tp.Shutdown(ctx)
	if err := query(ctx, dsn, tp); err != nil {
		return err
	}
	for _, s := range exp.GetSpans() {
		fmt.Fprintf(out, "span %q parent=%v\n", s.Name, s.Parent.SpanID().IsValid())
	}
	return nil
}

// query runs a transaction inside a span of tp; otelpgx records the statements.
func query(ctx context.Context, dsn string, tp *trace.TracerProvider) error {
	tracer := otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithIncludeQueryParameters())
	c, err := lakebase.NewConnector(dsn, lakebase.WithPgxConfig(func(cc *pgx.ConnConfig) { cc.Tracer = tracer }))
	if err != nil {
		return err
	}
	db := lakebase.OpenDB(c)
	defer db.Close()

	ctx, span := tp.Tracer("example").Start(ctx, "handle-request")
	defer span.End()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM generate_series(1, $1::int)", 5).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "SELECT set_config('application_name', 'otel-example', true)"); err != nil {
		return err
	}
	// The driver's own virtual procedures never reach pgx, so they make no span.
	if _, err := tx.ExecContext(ctx, "EXEC GetOAuthAuthorizationURL CallbackUrl='http://localhost:8020'"); err != nil {
		return err
	}
	return tx.Commit()
}
