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
	return &Conn{connector: c, ownsConnector: true}, nil
}

// OpenDB returns a *sql.DB on c with pool settings suited to Lakebase: connections
// live at most 45 minutes (DefaultConnMaxLifetime, as Databricks recommends, well
// inside Autoscaling's session limits), idle ones are closed after 10 minutes, and up
// to 5 stay idle. Database credentials are checked only at login, so the lifetime is
// not about expiry: it spreads reconnects out and follows endpoint changes.
// db.Close closes c.
//
// The CData pool properties of the connection string override those settings:
// PoolMaxSize is SetMaxOpenConns, PoolMinSize SetMaxIdleConns (database/sql keeps
// idle connections but never opens them ahead), PoolIdleTimeout SetConnMaxIdleTime,
// and UseConnectionPooling=false keeps no idle connection (every Close really
// closes). Neither database/sql nor pgxpool has an acquire timeout, so PoolWaitTime
// cannot be enforced by the driver: it is kept in Config for callers to bound their
// waits with (context.WithTimeout), and a Warn line says so once.
func OpenDB(c *Connector) *sql.DB {
	db := sql.OpenDB(c)
	lifetime := DefaultConnMaxLifetime
	if c.cfg.PoolMaxLifetime > 0 {
		lifetime = c.cfg.PoolMaxLifetime
	}
	c.lifetime.Store(int64(lifetime))
	db.SetConnMaxLifetime(lifetime)
	db.SetConnMaxIdleTime(10 * time.Minute)
	db.SetMaxIdleConns(5)
	cfg := c.cfg
	if cfg.PoolMaxSize != nil && *cfg.PoolMaxSize > 0 {
		db.SetMaxOpenConns(*cfg.PoolMaxSize)
	}
	if cfg.PoolMinSize != nil {
		db.SetMaxIdleConns(*cfg.PoolMinSize)
	}
	if cfg.PoolIdleTimeout > 0 {
		db.SetConnMaxIdleTime(cfg.PoolIdleTimeout)
	}
	if cfg.NoConnectionPooling {
		db.SetMaxIdleConns(0)
	}
	c.warnPoolWait()
	c.poolApplied.Store(true)
	return db
}

// OpenConnector parses dsn and returns a *Connector.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	return NewConnector(dsn)
}
