// Command migrate runs golang-migrate (v4) migrations through the driver, with the
// postgres database driver's WithInstance over a *sql.DB.
package main

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/lakebase-go/lakebase"

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
	drv, err := postgres.WithInstance(db, &postgres.Config{MigrationsTable: "migrate_example_migrations"})
	if err != nil {
		return err
	}
	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, "lakebase", drv)
	if err != nil {
		return err
	}
	if err := m.Up(); err != nil && err != migrate.ErrNoChange {
		return err
	}
	v, dirty, _ := m.Version()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM migrate_example_accounts`).Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(out, "golang-migrate: version %d (dirty %v), %d accounts\n", v, dirty, n)
	if err := m.Down(); err != nil {
		return err
	}
	fmt.Fprintln(out, "golang-migrate: migrated down again")
	return nil
}
