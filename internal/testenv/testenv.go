// Package testenv says which tiers of the test suite can run here: `go test -short`
// needs neither PostgreSQL nor Chromium; `make test` runs everything and requires
// both (it installs them where it can).
package testenv

import (
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
