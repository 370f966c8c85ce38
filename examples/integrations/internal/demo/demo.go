// Package demo gives the integration examples a database: LAKEBASE_DSN when set,
// else the local Lakebase emulator.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

// Main runs fn with LAKEBASE_DSN, or with a service principal on the local emulator.
func Main(fn func(ctx context.Context, dsn string, out io.Writer) error) {
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
	if err := fn(context.Background(), dsn, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
