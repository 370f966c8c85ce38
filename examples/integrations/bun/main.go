// Command bun uses the driver with github.com/uptrace/bun and its Postgres dialect.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

type Book struct {
	bun.BaseModel `bun:"table:bun_example_books"`
	ID            int64  `bun:",pk,autoincrement"`
	Title         string `bun:",notnull"`
}

func main() { demo.Main(run) }

func run(ctx context.Context, dsn string, out io.Writer) error {
	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		return err
	}
	sqldb := lakebase.OpenDB(c)
	db := bun.NewDB(sqldb, pgdialect.New())
	defer db.Close()
	if _, err := db.NewCreateTable().Model((*Book)(nil)).IfNotExists().Exec(ctx); err != nil {
		return err
	}
	defer db.NewDropTable().Model((*Book)(nil)).IfExists().Exec(ctx)
	books := []Book{{Title: "The Go Programming Language"}, {Title: "Designing Data-Intensive Applications"}}
	if _, err := db.NewInsert().Model(&books).Exec(ctx); err != nil {
		return err
	}
	var got []Book
	if err := db.NewSelect().Model(&got).Order("id").Scan(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "bun: %d books, first %q (id %d)\n", len(got), got[0].Title, got[0].ID)
	return nil
}
