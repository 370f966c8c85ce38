// Command databasesql uses the driver through plain database/sql.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	_ "github.com/lakebase-go/lakebase"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func main() { demo.Main(run) }

func run(ctx context.Context, dsn string, out io.Writer) error {
	db, err := sql.Open("lakebase", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE items (id int, name text) ON COMMIT DROP`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO items VALUES ($1, $2), ($3, $4)`, 1, "one", 2, "two"); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(out, "database/sql: %d items\n", n)
	return tx.Commit()
}
