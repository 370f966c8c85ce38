// Command sqlx uses the driver with github.com/jmoiron/sqlx.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jmoiron/sqlx"
	_ "github.com/lakebase-go/lakebase"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func init() {
	// sqlx picks the bind style ($1) by driver name.
	sqlx.BindDriver("lakebase", sqlx.DOLLAR)
}

type Person struct {
	ID   int    `db:"id"`
	Name string `db:"name"`
}

func main() { demo.Main(run) }

func run(ctx context.Context, dsn string, out io.Writer) error {
	db, err := sqlx.Open("lakebase", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.MustExecContext(ctx, `CREATE TABLE IF NOT EXISTS sqlx_example_person (id int, name text)`)
	defer db.ExecContext(ctx, `DROP TABLE sqlx_example_person`)
	if _, err := db.NamedExecContext(ctx, `INSERT INTO sqlx_example_person (id, name) VALUES (:id, :name)`,
		[]Person{{1, "Ada"}, {2, "Grace"}}); err != nil {
		return err
	}
	var people []Person
	q, args, err := sqlx.In(`SELECT id, name FROM sqlx_example_person WHERE id IN (?) ORDER BY id`, []int{1, 2})
	if err != nil {
		return err
	}
	if err := db.SelectContext(ctx, &people, db.Rebind(q), args...); err != nil {
		return err
	}
	fmt.Fprintf(out, "sqlx: %v\n", people)
	return nil
}
