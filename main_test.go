package lakebase_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase/internal/pgcluster"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// pg is the real PostgreSQL server shared by this package's tests; emu is the
// Lakebase emulator (with its own PostgreSQL behind its front door).
var (
	pg  *pgcluster.Cluster
	emu *lakebasetest.Server
)

const (
	testDB       = "lakebase_test"
	testRole     = "app_user"
	testPassword = "pw-Secret;with'quote"
)

func TestMain(m *testing.M) {
	switch os.Getenv("LAKEBASE_HELPER") {
	case "refresh-loop":
		os.Exit(helperRefreshLoop())
	case "write-loop":
		os.Exit(helperWriteLoop())
	case "system-roots":
		os.Exit(helperSystemRoots())
	case "query-once":
		os.Exit(helperQueryOnce())
	case "keyring-increment":
		os.Exit(helperKeyringIncrement())
	case "hold-store-lock":
		os.Exit(helperHoldStoreLock())
	}
	flag.Parse()
	if fuzzOnly() {
		os.Exit(m.Run()) // the fuzz targets need no servers
	}
	if testing.Short() {
		// -short: no PostgreSQL. The emulator serves only its workspace APIs, for the
		// token pipeline's tests; tests that need PostgreSQL skip themselves
		// (needServers). The examples all query a database, so they are skipped here.
		if f := flag.Lookup("test.skip"); f != nil && f.Value.String() == "" {
			flag.Set("test.skip", "^Example")
		}
		var err error
		if emu, err = lakebasetest.NewServer(lakebasetest.Options{HTTPOnly: true}); err != nil {
			fmt.Fprintln(os.Stderr, "starting the emulator:", err)
			os.Exit(1)
		}
		code := m.Run()
		emu.Close()
		os.Exit(code)
	}
	os.Exit(runMain(m))
}

// needServers skips t under -short: it needs PostgreSQL and the emulator.
func needServers(t testing.TB) {
	t.Helper()
	testenv.NeedPostgres(t)
}

// fuzzOnly reports whether this process only fuzzes: a fuzzing worker, or a
// coordinator run with -run '^$'.
func fuzzOnly() bool {
	get := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return get("test.fuzzworker") == "true" || (get("test.fuzz") != "" && get("test.run") == "^$")
}

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	pg, err = pgcluster.Start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting PostgreSQL:", err)
		return 1
	}
	defer pg.Stop()
	if err := pg.CreateDatabase(ctx, testDB); err != nil {
		fmt.Fprintln(os.Stderr, "creating database:", err)
		return 1
	}
	if err := pg.CreateRole(ctx, testRole, testPassword, testDB); err != nil {
		fmt.Fprintln(os.Stderr, "creating role:", err)
		return 1
	}
	emu, err = lakebasetest.NewServer(lakebasetest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the emulator:", err)
		return 1
	}
	defer emu.Close()
	return m.Run()
}

// passwordDSN returns an AuthScheme=Password connection string to the test server.
func passwordDSN(extra string) string {
	return fmt.Sprintf("AuthScheme=Password;Server=localhost;Port=%d;Database=%s;User=%s;Password='pw-Secret;with''quote';SSLMode=verify-full;SSLServerCert=%s;%s",
		pg.Port, testDB, testRole, pg.CAFile, extra)
}
