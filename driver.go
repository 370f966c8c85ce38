package lakebase

import (
	"database/sql"
	"database/sql/driver"
	"runtime"
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

// DefaultPoolMaxSize is the most sessions a pool of OpenDB or PoolConfig opens at
// once when PoolMaxSize is not set: the greater of 4 and runtime.NumCPU(), pgxpool's
// own default.
func DefaultPoolMaxSize() int { return max(4, runtime.NumCPU()) }

// OpenDB returns a *sql.DB on c with pool settings suited to Lakebase: at most
// DefaultPoolMaxSize() sessions open at once, and as many kept idle, so a busy
// service reuses its sessions instead of logging in again (each login is a TLS
// handshake and a credential check, and a small compute allows about a hundred
// connections); idle ones are closed after 10 minutes, and every one lives at most
// 45 minutes (DefaultConnMaxLifetime, as Databricks recommends, well inside
// Autoscaling's session limits), up to a tenth less at random. Database credentials
// are checked only at login, so the lifetime is not about expiry: it spreads
// reconnects out and follows endpoint changes. db.Close closes c.
//
// The CData pool properties of the connection string override those settings:
// PoolMaxSize is SetMaxOpenConns (and SetMaxIdleConns: idle sessions are kept up to
// the cap), PoolMinSize raises the default cap when it is larger (database/sql never
// opens sessions ahead), PoolIdleTimeout is SetConnMaxIdleTime, PoolMaxLifetime
// the lifetime, and UseConnectionPooling=false keeps no idle connection (every
// Close really closes). For no cap at all, call db.SetMaxOpenConns(0) afterwards.
// Neither database/sql nor pgxpool has an acquire timeout, so PoolWaitTime cannot
// be enforced by the driver: it is kept in Config for callers to bound their waits
// with (context.WithTimeout), and a Warn line says so once.
func OpenDB(c *Connector) *sql.DB {
	db := sql.OpenDB(c)
	lifetime := DefaultConnMaxLifetime
	if c.cfg.PoolMaxLifetime > 0 {
		lifetime = c.cfg.PoolMaxLifetime
	}
	c.lifetime.Store(int64(lifetime))
	db.SetConnMaxLifetime(lifetime)
	db.SetConnMaxIdleTime(10 * time.Minute)
	cfg := c.cfg
	size := poolMaxSize(cfg)
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
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

// poolMaxSize is the most sessions the pool opens at once: PoolMaxSize, else
// DefaultPoolMaxSize() or PoolMinSize when that is larger.
func poolMaxSize(cfg *Config) int {
	if cfg.PoolMaxSize != nil && *cfg.PoolMaxSize > 0 {
		return *cfg.PoolMaxSize
	}
	size := DefaultPoolMaxSize()
	if cfg.PoolMinSize != nil {
		size = max(size, *cfg.PoolMinSize)
	}
	return size
}

// OpenConnector parses dsn and returns a *Connector.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	return NewConnector(dsn)
}
