package lakebase

import (
	"context"
	"database/sql"
	"database/sql/driver"
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
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector parses dsn and returns a *Connector.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	return NewConnector(dsn)
}
