// Package testenv says which tiers of the test suite can run here: `go test -short`
// needs neither PostgreSQL nor Chromium; `make test` runs everything and requires
// both (it installs them where it can).
package testenv

import (
	"github.com/lakebase-go/lakebase/internal/pgcluster"

	"os"
	"testing"
)

// NeedPostgres skips tb under -short: it needs a real PostgreSQL (started by the test).
func NeedPostgres(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs PostgreSQL: not run with -short")
	}
}

// KeyringRequired reports whether the keyring tests must run (make test sets
// LAKEBASE_REQUIRE_KEYRING=1 on Linux, where it installs a Secret Service).
func KeyringRequired() bool { return os.Getenv("LAKEBASE_REQUIRE_KEYRING") == "1" }

// BrowserRequired reports whether a missing Chromium is a failure rather than a
// skip: `make test` sets LAKEBASE_REQUIRE_BROWSER=1.
func BrowserRequired() bool { return os.Getenv("LAKEBASE_REQUIRE_BROWSER") == "1" }

// PgBouncerRequired reports whether a missing pgbouncer is a failure rather than a
// skip: `make test` sets LAKEBASE_REQUIRE_PGBOUNCER=1 (and installs it).
func PgBouncerRequired() bool { return os.Getenv("LAKEBASE_REQUIRE_PGBOUNCER") == "1" }

// NeedPgBouncer skips tb under -short, and where no pgbouncer program is installed
// unless PgBouncerRequired, when it fails: the pooled-host tests run a real one.
func NeedPgBouncer(tb testing.TB) {
	tb.Helper()
	NeedPostgres(tb)
	if _, err := pgcluster.FindPgBouncer(); err != nil {
		if PgBouncerRequired() {
			tb.Fatalf("LAKEBASE_REQUIRE_PGBOUNCER=1: %v", err)
		}
		tb.Skipf("needs PgBouncer for the pooled host: %v", err)
	}
}
