package lakebase

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/usertoken"
	"github.com/lakebase-go/lakebase/workspace"
)

// Defaults of UserPoolOptions.
const (
	DefaultMaxUsers        = 100
	DefaultUserIdleTimeout = 10 * time.Minute
	DefaultSessionsPerUser = 3
)

// UserPoolOptions bound the per-person pools of UserPools. Zero values take the
// defaults.
type UserPoolOptions struct {
	// MaxUsers is the most pools open at once; beyond it the least recently used
	// one is closed. Default 100.
	MaxUsers int
	// IdleTimeout closes a person's pool unused this long. Default 10 minutes.
	IdleTimeout time.Duration
	// SessionsPerUser is the most Postgres sessions one person's pool opens.
	// Default 3.
	SessionsPerUser int
}

// UserPools are per-person pools for the database of a base connector, for an
// application that reaches Lakebase as each signed-in person (a Databricks App
// with user authorization, or a web app of its own): Postgres grants and
// row-level security then apply person by person.
//
// A pool is keyed by who the token proves — the workspace's answer to SCIM Me
// with that token — never by a header. Its sessions log in as that person with
// credentials minted with the person's own token: the newest valid token the
// person presented, so a pool outlives any one token. A session opened for one
// person is never handed to another.
//
// The *sql.DB (or *pgxpool.Pool) that DB (or Pool) returns serves the request at
// hand: do not keep it, since the person's pool closes when it has been idle for
// IdleTimeout or is the least recently used one beyond MaxUsers.
type UserPools struct {
	base *Connector
	opts UserPoolOptions

	mu     sync.Mutex
	pools  map[string]*userPool // by the person's user name
	closed bool

	ids     *usertoken.Identities // who each token proves
	stop    chan struct{}
	swept   chan struct{}
	closing sync.WaitGroup  // pools being closed after an eviction
	done    context.Context // ended by Close: SCIM Me lookups under way end with it
	end     context.CancelFunc
}

// userPool is one person's pool.
type userPool struct {
	user   string
	tokens *usertoken.Freshest
	conn   *Connector
	db     *sql.DB

	pgxOnce sync.Once
	pgx     atomic.Pointer[pgxpool.Pool]
	pgxErr  error

	lastUsed time.Time // under UserPools.mu
}

// NewUserPools returns per-person pools for base's database and workspace. base
// names the database (Endpoint, Project/Branch or Instance, Pooled, ReadOnly, ...)
// and carries the options every person's connector gets (logger, HTTP client,
// observers, pgx hooks); its own login is not used. Close the UserPools when done;
// it does not close base.
func NewUserPools(base *Connector, opts UserPoolOptions) *UserPools {
	if opts.MaxUsers <= 0 {
		opts.MaxUsers = DefaultMaxUsers
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultUserIdleTimeout
	}
	if opts.SessionsPerUser <= 0 {
		opts.SessionsPerUser = DefaultSessionsPerUser
	}
	u := &UserPools{base: base, opts: opts, pools: map[string]*userPool{}, stop: make(chan struct{}), swept: make(chan struct{})}
	u.done, u.end = context.WithCancel(context.Background())
	u.ids = &usertoken.Identities{Me: u.me, Max: 4 * opts.MaxUsers, Stop: u.stop, Closed: ErrClosed}
	go u.sweep()
	return u
}

// ForwardedToken returns the signed-in person's token that a Databricks App's
// proxy forwards in the X-Forwarded-Access-Token header ("" when there is none).
// Hand it to UserPools.DB; the person is learned from the token itself, not from
// X-Forwarded-User or X-Forwarded-Email.
func ForwardedToken(r *http.Request) string {
	return strings.TrimSpace(r.Header.Get("X-Forwarded-Access-Token"))
}

// DB returns the *sql.DB of the person token proves, opening their pool when it
// is not open. The token is checked with the workspace (SCIM Me) once per token;
// an expired or refused token fails this call with ErrUserToken and changes
// nothing. A newer token than the pool's is taken for the pool's next mints.
func (u *UserPools) DB(ctx context.Context, token string) (*sql.DB, error) {
	p, err := u.pool(ctx, token)
	if err != nil {
		return nil, err
	}
	return p.db, nil
}

// Pool is DB for pgx users: the person's *pgxpool.Pool (opened on first use, with
// SessionsPerUser sessions at most).
//
// The *sql.DB and the *pgxpool.Pool of a person are two pools: an application that
// uses both opens up to SessionsPerUser sessions through each.
func (u *UserPools) Pool(ctx context.Context, token string) (*pgxpool.Pool, error) {
	for {
		p, err := u.pool(ctx, token)
		if err != nil {
			return nil, err
		}
		p.pgxOnce.Do(func() {
			cfg, err := p.conn.PoolConfig()
			if err != nil {
				p.pgxErr = err
				return
			}
			cfg.MaxConns = int32(u.opts.SessionsPerUser)
			if cfg.MinConns > cfg.MaxConns {
				cfg.MinConns = cfg.MaxConns
			}
			pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
			p.pgx.Store(pool)
			p.pgxErr = err
		})
		if pool := p.pgx.Load(); pool != nil || p.pgxErr != nil {
			return pool, p.pgxErr
		}
		// The person's pool was closed (evicted) before its pgx pool was made:
		// the next round opens the person's pool again.
	}
}

// Len is the number of people whose pool is open.
func (u *UserPools) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pools)
}

// Close closes every person's pool and stops the idle sweep; no goroutine of the
// UserPools outlives it. It does not close the base connector.
func (u *UserPools) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	pools := u.pools
	u.pools = map[string]*userPool{}
	u.mu.Unlock()
	close(u.stop)
	u.end()
	<-u.swept
	var errs []error
	for _, p := range pools {
		errs = append(errs, p.close())
	}
	u.closing.Wait()
	return errors.Join(errs...)
}

func (u *UserPools) pool(ctx context.Context, token string) (*userPool, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fmt.Errorf("%w: no token (a Databricks App forwards it in X-Forwarded-Access-Token when user authorization is on)", ErrUserToken)
	}
	if !usertoken.ValidChars(token) {
		return nil, fmt.Errorf("%w: not a token (it holds characters no OAuth access token has)", ErrUserToken)
	}
	if !u.base.opened() {
		return nil, ErrConnectorNotOpened
	}
	u.mu.Lock()
	closed := u.closed
	u.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	id, checked, err := u.ids.Identify(ctx, token, false)
	if err != nil {
		return nil, err
	}
	tok := &oauth2.Token{AccessToken: token, TokenType: "Bearer", Expiry: id.Expires}
	if !checked && u.wouldTake(id.User, tok) {
		// A token that would take over the person's mints is asked about again, not
		// taken on a remembered answer: a token revoked since (and replayed) must not
		// displace the person's valid one.
		if id, _, err = u.ids.Identify(ctx, token, true); err != nil {
			return nil, err
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, ErrClosed
	}
	now := time.Now()
	if p := u.pools[id.User]; p != nil {
		p.lastUsed = now
		p.tokens.Offer(tok)
		return p, nil
	}
	p, err := u.open(id.User, tok)
	if err != nil {
		return nil, err
	}
	p.lastUsed = now
	u.pools[id.User] = p
	u.base.opts.observers.emit(ctx, Event{Kind: EventUserPoolOpen, Scheme: AuthTokenSource, Start: now, Outcome: OutcomeOK}, nil)
	for len(u.pools) > u.opts.MaxUsers {
		u.evictLocked(ctx, "max_users")
	}
	return p, nil
}

// wouldTake reports whether tok would become the login of user's open pool.
func (u *UserPools) wouldTake(user string, tok *oauth2.Token) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := u.pools[user]
	return p != nil && p.tokens.WouldTake(tok)
}

// me asks the workspace who token belongs to (SCIM Me with the token), within
// base's Timeout; Close ends it.
func (u *UserPools) me(ctx context.Context, token string) (string, error) {
	ctx, cancel := u.base.bounded(ctx)
	defer cancel()
	defer context.AfterFunc(u.done, cancel)()
	ws := workspace.New(u.base.cfg.DatabricksInstance, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}),
		u.base.opts.httpClient, u.base.workspaceOptions(workspace.Options{}))
	name, err := ws.Me(ctx)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden):
		return "", fmt.Errorf("%w (HTTP %d): the token is expired, revoked or not a token of this workspace", ErrUserToken, ae.StatusCode)
	case err != nil:
		return "", fmt.Errorf("lakebase: finding who the person's token belongs to (SCIM Me): %w", err)
	}
	return name, nil
}

// open makes a person's pool: a connector for base's database whose login is the
// person's freshest token and whose user is the person.
func (u *UserPools) open(user string, tok *oauth2.Token) (*userPool, error) {
	cfg := u.base.cfg.clone()
	cfg.AuthScheme = AuthTokenSource
	cfg.User = user
	// The person's own role: a SessionRole is the base identity's, and on a person's
	// session it would make current_user a role shared by everyone.
	cfg.SessionRole = ""
	cfg.OAuthClientID, cfg.OAuthClientSecret = "", ""
	cfg.OAuthAccessToken, cfg.OAuthRefreshToken, cfg.OAuthVerifier = "", "", ""
	cfg.OAuthSettingsLocation = ""
	cfg.InitiateOAuth = ""
	cfg.ConnectOnOpen = false
	cfg.PoolMaxSize = &u.opts.SessionsPerUser
	if cfg.PoolMinSize != nil && *cfg.PoolMinSize > u.opts.SessionsPerUser {
		cfg.PoolMinSize = &u.opts.SessionsPerUser
	}
	tokens := usertoken.NewFreshest(tok)
	o := u.base.opts
	o.tokenSource = tokens
	if len(o.observers) > 0 {
		o.observers = observers{nameless(u.base.opts.observers)}
	}
	c, err := NewConnectorFromConfig(cfg, func(dst *options) { *dst = o })
	if err != nil {
		return nil, err
	}
	return &userPool{user: user, tokens: tokens, conn: c, db: OpenDB(c)}, nil
}

// evictLocked closes the least recently used pool, preferring one with no session
// in use (a request may still hold the *sql.DB of a pool in use).
func (u *UserPools) evictLocked(ctx context.Context, cause string) {
	var lru, lruIdle *userPool
	for _, p := range u.pools {
		if lru == nil || p.lastUsed.Before(lru.lastUsed) {
			lru = p
		}
		if !p.inUse() && (lruIdle == nil || p.lastUsed.Before(lruIdle.lastUsed)) {
			lruIdle = p
		}
	}
	if lruIdle != nil {
		lru = lruIdle
	}
	if lru == nil {
		return
	}
	delete(u.pools, lru.user)
	u.closing.Add(1)
	go func() { // sql.DB.Close waits for statements under way; Close waits for this
		defer u.closing.Done()
		lru.close()
	}()
	u.base.opts.observers.emit(ctx, Event{Kind: EventUserPoolEvict, Scheme: AuthTokenSource, Start: time.Now(), Cause: cause, Outcome: OutcomeOK}, nil)
}

// sweep closes pools idle for IdleTimeout until Close.
func (u *UserPools) sweep() {
	defer close(u.swept)
	every := u.opts.IdleTimeout / 4
	if every > time.Minute {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case now := <-t.C:
			var idle []*userPool
			u.mu.Lock()
			for user, p := range u.pools {
				if p.inUse() {
					p.lastUsed = now // a request still uses it: idle from now on
					continue
				}
				if now.Sub(p.lastUsed) >= u.opts.IdleTimeout {
					delete(u.pools, user)
					idle = append(idle, p)
				}
			}
			u.mu.Unlock()
			for _, p := range idle {
				p.close()
				u.base.opts.observers.emit(context.Background(), Event{Kind: EventUserPoolEvict, Scheme: AuthTokenSource, Start: now, Cause: "idle", Outcome: OutcomeOK}, nil)
			}
		}
	}
}

// inUse reports whether a session of the pool is checked out.
func (p *userPool) inUse() bool {
	if p.db.Stats().InUse > 0 {
		return true
	}
	pool := p.pgx.Load()
	return pool != nil && pool.Stat().AcquiredConns() > 0
}

func (p *userPool) close() error {
	p.pgxOnce.Do(func() {}) // no pgx pool is opened after this
	if pool := p.pgx.Load(); pool != nil {
		pool.Close()
	}
	return p.db.Close() // closes the connector too
}

// nameless passes a person's connector's events to the base's observers without
// the person's name: events of per-user pools name nobody.
type nameless []Observer

func (n nameless) OnEvent(ctx context.Context, e Event) {
	e.User = ""
	for _, o := range n {
		o.OnEvent(ctx, e)
	}
}
