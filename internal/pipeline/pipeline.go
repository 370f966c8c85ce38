package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"

	"github.com/lakebase-go/lakebase/internal/cache"
	"github.com/lakebase-go/lakebase/internal/ctxsync"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
	"github.com/lakebase-go/lakebase/workspace"
)

// ErrCredential is matched by a failure to mint a database credential or to find
// the database (the driver re-exports it).
var ErrCredential = errors.New("lakebase: database credential")

// Config is what a pipeline needs of the connection string.
type Config struct {
	Workspace string // DatabricksInstance
	// The database: Endpoint or Instance by name, Project and Branch, or Server.
	Endpoint, Instance, Project, Branch, Server string
	Port                                        int
	User                                        string // the Postgres role ("" = look it up)
	ClientID                                    string // OAuthClientId
	// UserIsClientID: the Postgres role of this identity is its client id (service
	// principals), so no SCIM lookup is needed.
	UserIsClientID   bool
	ReadOnly, Pooled bool
	// VerifyFull: SSLMode=verify-full (a stored host may be used as is).
	VerifyFull bool
	// NoStore: InitiateOAuth=OFF, which never touches the store.
	NoStore            bool
	Timeout            time.Duration // of one fetch; 0 = 10 minutes
	CredentialLifetime time.Duration // 0 = an hour
	Claims             *workspace.CredentialClaims
}

// Options are the parts a pipeline is wired to.
type Options struct {
	Log  *slog.Logger
	HTTP *http.Client
	// Workspace are the REST client's options; OnTokenRefused is the pipeline's.
	Workspace workspace.Options
	Source    oauth2.TokenSource
	// Stored is the scheme's token store, for the schemes that keep one
	// (OAuthClient, OAuthPKCE); nil otherwise.
	Stored *oauth.Source
	// HostMeta is the workspace host's metadata: read during a token fetch, stored
	// once the login is done. Nil: none.
	HostMeta *oauth.HostMetadataCache
	// Emit is told what the pipeline does (nil: nobody).
	Emit func(ctx context.Context, e Event, err error)
	// PropertyError makes the driver's configuration error of a lookup that failed
	// because of a property (nil: the workspace's PropertyError as is).
	PropertyError func(e *workspace.PropertyError) error
}

// Event kinds, as the driver's observers know them.
const (
	EventWorkspaceToken = "workspace_token"
	EventCredentialMint = "credential_mint"
	EventRetry          = "retry"
	EventStoreRead      = "store_read"
	EventStoreWrite     = "store_write"
)

// Event is one thing the pipeline did; it never holds a secret.
type Event struct {
	Kind          string
	Database, API string
	Cause         string
	Start         time.Time
	Duration      time.Duration
	Expiry        time.Time
}

// Login is where and as whom the next session logs in, and the password.
type Login struct {
	Host     string
	Port     int
	User     string
	Password string
	Expiry   time.Time
	// Database names the endpoint or instance; State is its state when looked up.
	Database, State string
	// StoredHost: Host was read back from the settings store (SSLMode=verify-full);
	// a connect that fails before a password is sent drops it (ForgetStoredHost).
	StoredHost bool
}

// Pipeline is one connector's token pipeline.
type Pipeline struct {
	cfg Config
	log *slog.Logger
	// rest is the workspace REST API, authenticated with the cached workspace token
	// (tokens); a refused token reaches tokenRefused.
	rest     *workspace.Client
	src      oauth2.TokenSource
	stored   *oauth.Source
	hostMeta *oauth.HostMetadataCache
	emitFn   func(ctx context.Context, e Event, err error)
	propErr  func(e *workspace.PropertyError) error

	ws   *cache.Cache[*oauth2.Token]
	cred *cache.Cache[workspace.DatabaseCredential]

	mu     sync.Mutex
	target *target
	user   string
	// storedHostFailed: a host from the store did not take a connection; this
	// pipeline asks the workspace from then on (even if the store cannot be
	// written to drop the entry).
	storedHostFailed bool

	// One lookup of each kind at a time: concurrent logins wait for it (as long as
	// their contexts allow) and share it.
	targetMu, userMu ctxsync.Mutex
}

// New builds the pipeline of cfg.
func New(cfg Config, o Options) *Pipeline {
	p := &Pipeline{cfg: cfg, log: o.Log, src: o.Source, stored: o.Stored, hostMeta: o.HostMeta, emitFn: o.Emit, propErr: o.PropertyError}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	wo := o.Workspace
	wo.OnTokenRefused = p.tokenRefused
	p.rest = workspace.New(cfg.Workspace, tokens{p}, o.HTTP, wo)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	p.ws = &cache.Cache[*oauth2.Token]{Name: "workspace token", Timeout: timeout, OnEvent: p.event, MinSafety: 2 * time.Minute,
		Floor: oauth.HostTokenMargin(cfg.Workspace), Fetch: p.fetchToken}
	p.cred = &cache.Cache[workspace.DatabaseCredential]{Name: "database credential", Timeout: timeout, OnEvent: p.event, Fetch: p.mint}
	if p.hostMeta != nil {
		p.hostMeta.Load, p.hostMeta.Save, p.hostMeta.Drop = p.loadHostMetadata, p.saveHostMetadata, p.dropHostMetadata
	}
	return p
}

// fetchToken is the workspace token cache's Fetch: the scheme's token source.
func (p *Pipeline) fetchToken(ctx context.Context) (*oauth2.Token, time.Time, error) {
	start := time.Now()
	t, err := oauth.TokenContext(ctx, p.src)
	if err == nil && (t == nil || t.AccessToken == "") {
		err = fmt.Errorf("%w: the token source returned no access token", oauth.ErrNoToken)
	}
	ev := Event{Kind: EventWorkspaceToken, Start: start, Duration: time.Since(start)}
	if err != nil {
		p.emit(ctx, ev, err)
		return nil, time.Time{}, err
	}
	ev.Expiry = t.Expiry
	p.emit(ctx, ev, nil)
	return t, t.Expiry, nil
}

func (p *Pipeline) emit(ctx context.Context, e Event, err error) {
	if p.emitFn != nil {
		p.emitFn(ctx, e, err)
	}
}

func (p *Pipeline) event(ev cache.CacheEvent) {
	attrs := []any{slog.String("what", ev.Name), slog.Time("expiry", ev.Expiry),
		slog.String("workspace", p.cfg.Workspace), slog.String("identity", p.identityForLog())}
	switch ev.Kind {
	case "fetched":
		p.log.Info("lakebase: fetched", attrs...)
	case "refreshed-ahead":
		p.log.Info("lakebase: refreshed ahead of expiry", attrs...)
	case "refresh-failed-kept":
		p.log.Warn("lakebase: refresh failed; keeping the still-valid one", append(attrs, slog.String("error", ev.Err.Error()))...)
	case "fetch-failed":
		p.log.Error("lakebase: fetch failed", append(attrs, slog.String("error", ev.Err.Error()))...)
	}
}

func (p *Pipeline) identityForLog() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.user != "" {
		return p.user
	}
	if p.cfg.User != "" {
		return p.cfg.User
	}
	return p.cfg.ClientID
}

// Token returns the cached workspace token.
func (p *Pipeline) Token(ctx context.Context) (*oauth2.Token, error) {
	t, _, err := p.ws.Get(ctx)
	return t, err
}

// tokenRefused is the workspace client's answer to a refused token (401 or 403): the
// token is dropped from memory and from the store (so no other process picks it
// up), and a new one is returned for the one more try the client makes; a 403 with
// the new token is a permission problem and is reported as such. When nothing can
// renew the token, the refusal is the error.
func (p *Pipeline) tokenRefused(ctx context.Context, refused string, cause error) (string, error) {
	p.log.Info("lakebase: a workspace API refused the token; getting a new one", slog.String("error", cause.Error()))
	p.emit(ctx, Event{Kind: EventRetry, Cause: refusalCause(cause), Start: time.Now()}, nil)
	p.ws.Invalidate(func(t *oauth2.Token) bool { return t.AccessToken == refused })
	if r, ok := p.src.(interface{ TokenRefused(string) }); ok {
		r.TokenRefused(refused) // e.g. the CLI: ask it for a fresh token, not its cached one
	}
	if p.stored != nil {
		if derr := p.stored.Drop(ctx, refused); derr != nil {
			p.log.Warn("lakebase: could not drop the refused token from the store", slog.String("error", derr.Error()))
		}
	}
	// Another caller refused the same token at the same time and may already have a
	// new one: take what the cache has (or its flight), unless that is the refused one.
	t, _, err := p.ws.Get(ctx)
	if err != nil {
		return "", err
	}
	if t.AccessToken == refused {
		if t, _, err = p.ws.GetFetchedAfter(ctx, time.Now()); err != nil {
			return "", err
		}
	}
	if t.AccessToken == refused {
		// Nothing renews this token (OAuthAccessToken under InitiateOAuth=OFF, or a
		// token source that hands out the same one): the token itself was refused.
		return "", &refusedTokenError{err: cause, off: p.cfg.NoStore && p.stored != nil}
	}
	return t.AccessToken, nil
}

// refusalCause is "401" or "403" for a refused workspace token.
func refusalCause(err error) string {
	var ae *workspace.APIError
	if errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden) {
		return strconv.Itoa(ae.StatusCode)
	}
	return "403"
}

// refusedTokenError reports a workspace token the workspace refused (401/403) when
// no new one can be had.
type refusedTokenError struct {
	err error
	off bool
}

func (e *refusedTokenError) Error() string {
	var ae *workspace.APIError
	status := 0
	if errors.As(e.err, &ae) {
		status = ae.StatusCode
	}
	if e.off {
		return fmt.Sprintf("lakebase: the workspace refused OAuthAccessToken (HTTP %d: it is expired, revoked or of another workspace, or its identity lacks permission), and InitiateOAuth=OFF never renews it: pass a fresh OAuthAccessToken, or set InitiateOAuth=REFRESH with a stored login", status)
	}
	return fmt.Sprintf("lakebase: the workspace refused the token (HTTP %d), and the token source handed out the same one again: %v", status, e.err)
}

func (e *refusedTokenError) Unwrap() error { return e.err }

// credentialError marks a failure to mint a credential or find the database.
type credentialError struct{ err error }

func (e *credentialError) Error() string        { return e.err.Error() }
func (e *credentialError) Unwrap() error        { return e.err }
func (e *credentialError) Is(target error) bool { return target == ErrCredential }

// mintFor returns what credentials are minted for: the endpoint or instance of the
// connection string, or (Project, Server) the one a lookup found.
func (p *Pipeline) mintFor(ctx context.Context) (endpoint, instance string, err error) {
	if p.cfg.Endpoint != "" || p.cfg.Instance != "" { // known without a request
		return p.cfg.Endpoint, p.cfg.Instance, nil
	}
	t, err := p.resolveTarget(ctx)
	if err != nil {
		return "", "", err
	}
	return t.Endpoint, t.Instance, nil
}

// mint fetches a database credential (the credential cache's Fetch): the stored one
// when it has life left, else a new one from the credential API.
func (p *Pipeline) mint(ctx context.Context) (workspace.DatabaseCredential, time.Time, error) {
	endpoint, instance, err := p.mintFor(ctx)
	if err != nil {
		return workspace.DatabaseCredential{}, time.Time{}, err
	}
	var cred workspace.DatabaseCredential
	// Of a fleet starting at once on one store, one process mints and stores; the
	// others wait here and take what it stored.
	err = p.exclusive(ctx, "credential", func() (err error) {
		cred, err = p.mintOrRecall(ctx, endpoint, instance)
		return err
	})
	return cred, cred.Expiry, err
}

// mintOrRecall returns the stored credential when it will do, else mints one and
// stores it.
func (p *Pipeline) mintOrRecall(ctx context.Context, endpoint, instance string) (workspace.DatabaseCredential, error) {
	key, keyed := p.credentialKey(endpoint, instance)
	// A stored credential is used when this process has none yet (a warm start), or
	// when another process minted a newer one than this process holds; a refresh
	// ahead of expiry never takes back the credential it is replacing.
	held, heldExp, has := p.cred.Peek()
	if sc := p.storedCredential(ctx, key, keyed); sc != nil && (!has || sc.Token != held.Token && sc.Expiry.After(heldExp)) {
		p.log.Debug("lakebase: database credential from the store", slog.Time("expiry", sc.Expiry))
		return workspace.DatabaseCredential{Token: sc.Token, Expiry: sc.Expiry}, nil
	}
	minted := time.Now()
	cred, err := p.mintOnce(ctx, endpoint, instance)
	if workspace.IsNotFound(err) && p.cfg.Project != "" {
		// The endpoint of a stored or earlier lookup is gone: resolve the branch again
		// (a deleted branch is then a clear error naming it).
		p.dropTarget(ctx)
		if endpoint, instance, err = p.mintFor(ctx); err != nil {
			return workspace.DatabaseCredential{}, err
		}
		key, keyed = p.credentialKey(endpoint, instance)
		cred, err = p.mintOnce(ctx, endpoint, instance)
	}
	if err != nil {
		return workspace.DatabaseCredential{}, &credentialError{err}
	}
	p.keepCredential(ctx, key, keyed, cred, minted, endpoint, instance)
	return cred, nil
}

// mintOnce asks the credential API of the endpoint's or the instance's kind.
func (p *Pipeline) mintOnce(ctx context.Context, endpoint, instance string) (cred workspace.DatabaseCredential, err error) {
	start := time.Now()
	ev := Event{Kind: EventCredentialMint, Database: endpoint, API: "autoscaling", Start: start}
	if endpoint == "" {
		ev.Database, ev.API = instance, "provisioned"
	}
	defer func() {
		ev.Duration, ev.Expiry = time.Since(start), cred.Expiry
		p.emit(ctx, ev, err)
	}()
	if endpoint != "" {
		ttl := p.cfg.CredentialLifetime
		if ttl <= 0 {
			ttl = time.Hour
		}
		return p.rest.GenerateCredential(ctx, workspace.CredentialRequest{Endpoint: endpoint, TTL: ttl, Claims: p.cfg.Claims})
	}
	return p.rest.GenerateProvisionedCredential(ctx, workspace.ProvisionedCredentialRequest{Instances: []string{instance}, Claims: p.cfg.Claims})
}

// resolveUser returns the Postgres role: User, else the client id of a service
// principal, else the SCIM userName of the token's identity.
func (p *Pipeline) resolveUser(ctx context.Context) (string, error) {
	if p.cfg.User != "" {
		return p.cfg.User, nil
	}
	if p.cfg.UserIsClientID && p.cfg.ClientID != "" {
		return p.cfg.ClientID, nil
	}
	if err := p.userMu.Lock(ctx); err != nil {
		return "", err
	}
	defer p.userMu.Unlock()
	p.mu.Lock()
	u := p.user
	p.mu.Unlock()
	if u != "" {
		return u, nil
	}
	err := p.exclusive(ctx, "user", func() error {
		if u = p.storedUser(ctx); u != "" {
			return nil
		}
		var err error
		if u, err = p.rest.Me(ctx); err != nil {
			return fmt.Errorf("lakebase: finding the user name (set User to skip this): %w", err)
		}
		p.keepUser(ctx, u)
		return nil
	})
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.user = u
	p.mu.Unlock()
	return u, nil
}

// Login returns a login for a new session. refused, when set, is a credential the
// server just refused: the login uses one whose minting starts after the refusal.
//
// The three things a login needs — the credential, the host, the user name — are
// worked out at once: on a cold start they wait together for the one workspace
// token, then go to the workspace in one parallel wave (mint ‖ host lookup ‖ SCIM
// Me); on a warm start (a store holding all three) there is no request at all.
func (p *Pipeline) Login(ctx context.Context, refused string) (Login, error) {
	if refused != "" {
		p.cred.Invalidate(func(c workspace.DatabaseCredential) bool { return c.Token == refused })
		p.remember(ctx, func(st *settings.Settings) { st.DropCredential(refused) })
		// The endpoint a branch resolved to may be gone (the branch was deleted): look
		// it up again rather than trust the stored answer.
		p.dropTarget(ctx)
	}
	var (
		cred workspace.DatabaseCredential
		user string
		t    *target
	)
	if p.needsToken(ctx, refused != "") {
		// Cold: the one workspace token first, then every request in one wave.
		if _, err := p.Token(ctx); err != nil {
			return Login{}, err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if refused != "" {
			cred, _, err = p.cred.GetFetchedAfter(gctx, time.Now())
		} else {
			cred, _, err = p.cred.Get(gctx)
		}
		return err
	})
	g.Go(func() (err error) { user, err = p.resolveUser(gctx); return err })
	g.Go(func() (err error) { t, err = p.resolveTarget(gctx); return err })
	if err := g.Wait(); err != nil {
		return Login{}, err
	}
	if p.hostMeta != nil {
		p.hostMeta.Flush(ctx) // outside every store lock
	}
	host, port := SplitHostPort(t.Host, p.cfg.Port)
	return Login{Host: host, Port: port, User: user, Password: cred.Token, Expiry: cred.Expiry,
		Database: t.Name(), State: t.State, StoredHost: t.stored}, nil
}

// SplitHostPort splits a host the workspace reported with a port ("host:port", as
// the emulator's pooled host is) into both; any other host keeps port.
func SplitHostPort(host string, port int) (string, int) {
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		return host, port
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return host, port
	}
	return h, n
}

// ForgetCredential drops the credential from memory and from the store.
func (p *Pipeline) ForgetCredential() {
	p.cred.Invalidate(nil)
	if p.stores() {
		p.remember(context.Background(), func(st *settings.Settings) { st.ForgetCredentials(p.stored.Key()) })
	}
}

// Describe reports the expiries of the token and credential held, and the database
// looked up.
func (p *Pipeline) Describe() (tokenExpiry, credentialExpiry time.Time, endpoint, instance string) {
	if t, _, ok := p.ws.Peek(); ok {
		tokenExpiry = t.Expiry
	}
	if _, exp, ok := p.cred.Peek(); ok {
		credentialExpiry = exp
	}
	p.mu.Lock()
	if p.target != nil {
		endpoint, instance = p.target.Endpoint, p.target.Instance
	}
	p.mu.Unlock()
	return tokenExpiry, credentialExpiry, endpoint, instance
}

// Logout drops the cached token, credential and user, and the stored login.
func (p *Pipeline) Logout(ctx context.Context) error {
	p.ws.Invalidate(nil)
	p.cred.Invalidate(nil)
	p.mu.Lock()
	p.user = ""
	p.mu.Unlock()
	if p.stored == nil {
		return nil
	}
	return p.stored.Forget(ctx)
}

// Stats are the counters of the token and credential caches.
func (p *Pipeline) Stats() (workspaceToken, credential cache.CacheStats) {
	return p.ws.Stats(), p.cred.Stats()
}

// TokenSource is the pipeline's cached workspace token as an oauth2.TokenSource.
func (p *Pipeline) TokenSource() oauth2.TokenSource { return tokens{p} }

// Close stops the caches' refreshes.
func (p *Pipeline) Close() {
	p.cred.Close()
	p.ws.Close()
}

// Adopt makes a token obtained by a login step the workspace token, and drops what
// was derived from the previous one (a new login may be another person).
func (p *Pipeline) Adopt(t *oauth2.Token) {
	p.ws.Set(t, t.Expiry)
	p.mu.Lock()
	p.user = ""
	p.mu.Unlock()
	p.cred.Invalidate(nil)
}

// tokens is the pipeline's cached workspace token as an oauth2.TokenSource.
type tokens struct{ p *Pipeline }

func (t tokens) Token() (*oauth2.Token, error) { return t.TokenContext(context.Background()) }

func (t tokens) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	tok, err := t.p.Token(ctx)
	if err != nil {
		return nil, err
	}
	c := *tok // the caller may keep or change it; the cache's copy stays as it is
	return &c, nil
}
