// Command pgxpool uses the lakebase token pipeline with a native pgx pool, without
// database/sql: the connector's BeforeConnect hook gives every new pooled connection
// a fresh-enough database credential.
//
//	LAKEBASE_DSN='AuthScheme=OAuthClient;DatabricksInstance=...;Endpoint=...;OAuthClientId=...;OAuthClientSecret=...' go run ./examples/pgxpool
//
// With no LAKEBASE_DSN it runs against the local emulator.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

func main() {
	dsn := os.Getenv("LAKEBASE_DSN")
	if dsn == "" {
		emu, err := lakebasetest.NewServer(lakebasetest.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer emu.Close()
		dsn = emu.OAuthClientDSN()
	}
	if err := run(context.Background(), dsn, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pgxpool:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dsn string, out io.Writer) error {
	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		return err
	}
	defer c.Close() // after the pool

	cfg, err := c.PoolConfig() // BeforeConnect = c.BeforeConnect, MaxConnLifetime = 45m
	if err != nil {
		return err
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	var who string
	var n int
	if err := pool.QueryRow(ctx, "SELECT current_user, (SELECT count(*) FROM generate_series(1, 1000))").Scan(&who, &n); err != nil {
		return err
	}
	fmt.Fprintf(out, "pgxpool connected as %s; counted %d rows\n", who, n)
	return nil
}
