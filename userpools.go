package lakebase

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

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
	who    map[string]identity  // by the token's digest
	closed bool

	lookups singleflight.Group
	stop    chan struct{}
	swept   chan struct{}
}

type identity struct {
	user    string
	expires time.Time // when the token expires (the cache entry with it)
}

// userPool is one person's pool.
type userPool struct {
	user   string
	tokens *freshestToken
	conn   *Connector
	db     *sql.DB

	pgxOnce sync.Once
	pgx     *pgxpool.Pool
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
	u := &UserPools{base: base, opts: opts, pools: map[string]*userPool{}, who: map[string]identity{},
		stop: make(chan struct{}), swept: make(chan struct{})}
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
func (u *UserPools) Pool(ctx context.Context, token string) (*pgxpool.Pool, error) {
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
		p.pgx, p.pgxErr = pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	})
	return p.pgx, p.pgxErr
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
	<-u.swept
	var errs []error
	for _, p := range pools {
		errs = append(errs, p.close())
	}
	return errors.Join(errs...)
}

func (u *UserPools) pool(ctx context.Context, token string) (*userPool, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fmt.Errorf("%w: no token (a Databricks App forwards it in X-Forwarded-Access-Token when user authorization is on)", ErrUserToken)
	}
	if u.base == nil || u.base.login == nil {
		return nil, ErrConnectorNotOpened
	}
	id, err := u.identify(ctx, token)
	if err != nil {
		return nil, err
	}
	tok := &oauth2.Token{AccessToken: token, TokenType: "Bearer", Expiry: id.expires}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, ErrClosed
	}
	now := time.Now()
	if p := u.pools[id.user]; p != nil {
		p.lastUsed = now
		p.tokens.offer(tok)
		return p, nil
	}
	p, err := u.open(id.user, tok)
	if err != nil {
		return nil, err
	}
	p.lastUsed = now
	u.pools[id.user] = p
	u.base.opts.observers.emit(ctx, Event{Kind: EventUserPoolOpen, Scheme: AuthTokenSource, Start: now, Outcome: OutcomeOK}, nil)
	for len(u.pools) > u.opts.MaxUsers {
		u.evictLocked(ctx, "max_users")
	}
	return p, nil
}

// identify returns the person a token proves, from the workspace (SCIM Me with the
// token), cached by the token's digest until the token expires.
func (u *UserPools) identify(ctx context.Context, token string) (identity, error) {
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	now := time.Now()
	u.mu.Lock()
	id, ok := u.who[key]
	u.mu.Unlock()
	if ok && now.Before(id.expires) {
		return id, nil
	}
	exp := tokenExpiry(token, now)
	if !now.Before(exp) {
		return identity{}, fmt.Errorf("%w: it expired at %s; the person must sign in again", ErrUserToken, exp.UTC().Format(time.RFC3339))
	}
	v, err, _ := u.lookups.Do(key, func() (any, error) {
		ctx, cancel := u.base.bounded(context.WithoutCancel(ctx))
		defer cancel()
		ws := workspace.New(u.base.cfg.DatabricksInstance, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}),
			u.base.opts.httpClient, u.base.workspaceOptions(workspace.Options{}))
		name, err := ws.Me(ctx)
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden) {
				return nil, fmt.Errorf("%w (HTTP %d): the token is expired, revoked or not a token of this workspace", ErrUserToken, ae.StatusCode)
			}
			return nil, fmt.Errorf("lakebase: finding who the person's token belongs to (SCIM Me): %w", err)
		}
		if name == "" {
			return nil, fmt.Errorf("%w: the workspace named no user for it", ErrUserToken)
		}
		return identity{user: name, expires: exp}, nil
	})
	if err != nil {
		return identity{}, err
	}
	id = v.(identity)
	u.mu.Lock()
	for k, e := range u.who { // keep the cache to live tokens
		if !now.Before(e.expires) {
			delete(u.who, k)
		}
	}
	for k := range u.who { // and bounded: a dropped entry costs one more SCIM Me
		if len(u.who) < 4*u.opts.MaxUsers {
			break
		}
		delete(u.who, k)
	}
	u.who[key] = id
	u.mu.Unlock()
	return id, nil
}

// tokenExpiry reads the exp of a JWT access token. It is used only to know how
// long the workspace's answer about the token may be kept (the workspace checked
// the token itself); an opaque token is kept for 5 minutes.
func tokenExpiry(token string, now time.Time) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				Exp float64 `json:"exp"`
			}
			if json.Unmarshal(b, &c) == nil && c.Exp > 0 {
				return time.Unix(int64(c.Exp), 0)
			}
		}
	}
	return now.Add(5 * time.Minute)
}

// open makes a person's pool: a connector for base's database whose login is the
// person's freshest token and whose user is the person.
func (u *UserPools) open(user string, tok *oauth2.Token) (*userPool, error) {
	cfg := u.base.cfg.clone()
	cfg.AuthScheme = AuthTokenSource
	cfg.User = user
	cfg.OAuthClientID, cfg.OAuthClientSecret = "", ""
	cfg.OAuthAccessToken, cfg.OAuthRefreshToken, cfg.OAuthVerifier = "", "", ""
	cfg.OAuthSettingsLocation = ""
	cfg.InitiateOAuth = ""
	cfg.ConnectOnOpen = false
	cfg.PoolMaxSize = &u.opts.SessionsPerUser
	if cfg.PoolMinSize != nil && *cfg.PoolMinSize > u.opts.SessionsPerUser {
		cfg.PoolMinSize = &u.opts.SessionsPerUser
	}
	tokens := &freshestToken{tok: tok}
	o := u.base.opts
	o.tokenSource = tokens
	c, err := NewConnectorFromConfig(cfg, func(dst *options) { *dst = o })
	if err != nil {
		return nil, err
	}
	return &userPool{user: user, tokens: tokens, conn: c, db: OpenDB(c)}, nil
}

// evictLocked closes the least recently used pool.
func (u *UserPools) evictLocked(ctx context.Context, cause string) {
	var lru *userPool
	for _, p := range u.pools {
		if lru == nil || p.lastUsed.Before(lru.lastUsed) {
			lru = p
		}
	}
	if lru == nil {
		return
	}
	delete(u.pools, lru.user)
	go lru.close() // sql.DB.Close waits for statements under way
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

func (p *userPool) close() error {
	p.pgxOnce.Do(func() {}) // no pgx pool is opened after this
	if p.pgx != nil {
		p.pgx.Close()
	}
	return p.db.Close() // closes the connector too
}

// freshestToken is a person's login: the newest valid token they presented.
type freshestToken struct {
	mu  sync.Mutex
	tok *oauth2.Token
}

// offer takes t when it outlives the current token.
func (f *freshestToken) offer(t *oauth2.Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tok.AccessToken != t.AccessToken && !t.Expiry.Before(f.tok.Expiry) {
		f.tok = t
	}
}

// Token returns the freshest token.
func (f *freshestToken) Token() (*oauth2.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !time.Now().Before(f.tok.Expiry) {
		return nil, fmt.Errorf("%w: every token this person presented has expired; they must sign in again", ErrUserToken)
	}
	t := *f.tok
	return &t, nil
}
