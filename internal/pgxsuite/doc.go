// Package pgxsuite runs pgx's own database/sql test suite (stdlib/sql_test.go, from
// the pgx module in the module cache) through the lakebase driver, side by side
// with pgx, as a regression guard for the wrapper: every test must end the same way
// through both. It holds only its test; see pgxsuite_test.go.
package pgxsuite
