package lakebase

import (
	"database/sql"
	"database/sql/driver"
	"time"
)

// DriverName is the name the driver is registered under with database/sql.
const DriverName = "lakebase"

func init() {
	sql.Register(DriverName, &Driver{})
}

// Driver is the database/sql driver for Lakebase. It implements driver.DriverContext,
// so sql.Open parses the connection string once and shares one Connector (and one
// token pipeline) among all connections of the *sql.DB.
type Driver struct{}

// Open opens a connection with a one-off connector. database/sql uses OpenConnector
// instead; Open exists for callers that use the driver directly.
// The connection owns its connector and closes it on Close.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	c, err := NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return &conn{connector: c, ownsConnector: true}, nil
}

// OpenDB returns a *sql.DB on c with pool settings suited to Lakebase: connections
// live at most 45 minutes (DefaultConnMaxLifetime, as Databricks recommends, well
// inside Autoscaling's session limits), idle ones are closed after 10 minutes, and up
// to 5 stay idle. Database credentials are checked only at login, so the lifetime is
// not about expiry: it spreads reconnects out and follows endpoint changes.
// db.Close closes c.
func OpenDB(c *Connector) *sql.DB {
	db := sql.OpenDB(c)
	db.SetConnMaxLifetime(DefaultConnMaxLifetime)
	db.SetConnMaxIdleTime(10 * time.Minute)
	db.SetMaxIdleConns(5)
	return db
}

// OpenConnector parses dsn and returns a *Connector.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	return NewConnector(dsn)
}
