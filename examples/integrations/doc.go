// Package integrations holds runnable examples of the lakebase driver with the Go
// ecosystem's database tools: database/sql, sqlx, GORM, golang-migrate, goose and
// bun. It is a module of its own so the driver's go.mod stays small.
package integrations
