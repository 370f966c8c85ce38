package lakebase

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lakebase-go/lakebase/internal/pgsession"
)

// BeforeConnect is a hook for pgx's BeforeConnect (pgxpool.Config.BeforeConnect,
// or stdlib.OptionBeforeConnect): it runs the connector's token pipeline and sets the
// host, port, user, password and TLS policy of the connection about to be opened
// (after the WithPgxConfig hooks).
//
// Unlike the database/sql path, a pgx pool cannot retry a refused login within one
// connect: when a connect fails with SQLSTATE 28P01 or 28000, call ForgetCredential
// and the pool's next connect mints a fresh credential.
func (c *Connector) BeforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	li, err := c.login(ctx, "")
	if err != nil {
		return err
	}
	return c.applyLogin(cc, li)
}

// PoolConfig returns a pgxpool configuration whose connections log in through this
// connector (BeforeConnect), with the same database, TLS policy, application name,
// exec mode and time zone, the WithAfterConnect hooks, and sessions that live at most
// 45 minutes as Databricks recommends (PoolMaxLifetime), ended up to a tenth earlier
// at random: MaxConnLifetime is nine tenths of it and MaxConnLifetimeJitter the
// rest. The CData pool properties apply: PoolMaxSize is MaxConns (else
// DefaultPoolMaxSize(), pgxpool's own default, or PoolMinSize when larger),
// PoolMinSize MinConns (pgxpool opens them ahead), PoolIdleTimeout MaxConnIdleTime.
// Close the pool before the connector.
func (c *Connector) PoolConfig() (*pgxpool.Config, error) {
	if !c.opened() {
		return nil, ErrConnectorNotOpened
	}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("lakebase: building the pool configuration: %w", err)
	}
	pc.ConnConfig = c.base.Copy()
	pc.BeforeConnect = c.BeforeConnect
	if c.needsAfterConnect() {
		pc.AfterConnect = c.afterConnect
	}
	life := DefaultConnMaxLifetime
	if c.cfg.PoolMaxLifetime > 0 {
		life = c.cfg.PoolMaxLifetime
	}
	// pgxpool adds up to the jitter to the lifetime: a session lives from nine tenths
	// of life to life, never longer, and a fleet does not reconnect at once.
	pc.MaxConnLifetimeJitter = life / 10
	pc.MaxConnLifetime = life - pc.MaxConnLifetimeJitter
	// On every acquire: a session idle over a second is pinged (pgxpool's own rule);
	// one idle over pgsession.LookAfterIdle is looked at, and pinged (so discarded) when the
	// server ended it; one used more recently costs nothing (see pgsession.PingBeforeReuse).
	pc.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		return pgsession.PingBeforeReuse(p.Conn.PgConn(), p.IdleDuration, c.lookAfter)
	}
	cfg := c.cfg
	pc.MaxConns = int32(poolMaxSize(cfg))
	if cfg.PoolMinSize != nil {
		pc.MinConns = int32(*cfg.PoolMinSize)
	}
	if cfg.PoolIdleTimeout > 0 {
		pc.MaxConnIdleTime = cfg.PoolIdleTimeout
	}
	c.warnPoolWait()
	c.poolApplied.Store(true)
	return pc, nil
}
