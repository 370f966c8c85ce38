// Command goose runs goose (v3) migrations through the driver.
package main

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io"

	_ "github.com/lakebase-go/lakebase"
	"github.com/pressly/goose/v3"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

//go:embed migrations/*.sql
var migrations embed.FS

func main() { demo.Main(run) }

func run(ctx context.Context, dsn string, out io.Writer) error {
	db, err := sql.Open("lakebase", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, mustSub(migrations, "migrations"),
		goose.WithTableName("goose_example_version"))
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM goose_example_orders`).Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(out, "goose: version %d, %d orders\n", v, n)
	if _, err := p.DownTo(ctx, 0); err != nil {
		return err
	}
	fmt.Fprintln(out, "goose: migrated down again")
	return nil
}
