package lakebase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
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

// tokenPipeline is the login of every token scheme: a workspace token from the
// scheme's oauth2.TokenSource (cached, refreshed ahead of expiry), exchanged for a
// database credential (cached likewise), plus the host and the user name.
type tokenPipeline struct {
	cfg *Config
	log *slog.Logger
	// rest is the workspace REST API, authenticated with the cached workspace token
	// (pipelineTokens); a refused token reaches tokenRefused.
	rest *workspace.Client
	src  oauth2.TokenSource
	// stored is the scheme's token store, for the schemes that keep one (OAuthClient,
	// OAuthPKCE); nil otherwise.
	stored *oauth.Source
	// userIsClientID: the Postgres role of this identity is its client id (service
	// principals), so no SCIM lookup is needed.
	userIsClientID bool

	ws   *cache.Cache[*oauth2.Token]
	cred *cache.Cache[workspace.DatabaseCredential]

	mu     sync.Mutex
	target *target
	user   string
	// storedHostFailed: a host from the store did not take a connection; this
	// pipeline asks the workspace from then on (even if the store cannot be
	// written to drop the entry).
	storedHostFailed bool

	// hostMeta is the workspace host's metadata (nil for a bare pipeline); metadata
	// read during a token fetch is stored once the login is done.
	hostMeta *oauth.HostMetadataCache
	// obs are told what the pipeline does (nil: nobody).
	obs observers

	// One lookup of each kind at a time: concurrent logins wait for it (as long as
	// their contexts allow) and share it.
	targetMu, userMu ctxsync.Mutex
}

// target is the database a credential is minted for.
type target struct {
	instance string // Provisioned
	endpoint string // Autoscaling
	host     string
	state    string // current_state (Autoscaling) or state (Provisioned) when looked up
	// stored: host was read back from the settings store and not confirmed by the
	// workspace in this process (used only where storedHostUsable allows).
	stored bool
}

// name is how messages name the database.
func (t *target) name() string {
	switch {
	case t.endpoint != "":
		return "endpoint " + t.endpoint
	case t.instance != "":
		return "instance " + t.instance
	}
	return "host " + t.host
}

// checkState refuses a database whose state means it cannot take connections now;
// IDLE endpoints (scaled to zero) and starting instances wake on connect.
func (t *target) checkState() error {
	switch t.state {
	case "", "ACTIVE", "IDLE", "AVAILABLE", "STARTING", "UPDATING", "FAILING_OVER":
		return nil
	case "INIT":
		return fmt.Errorf("lakebase: %s is INIT (its compute is being created); connect when it is ACTIVE or IDLE", t.name())
	case "DEGRADED":
		return fmt.Errorf("lakebase: %s is DEGRADED; check it in the workspace (Compute of the Lakebase project) before connecting", t.name())
	case "STOPPED":
		return fmt.Errorf("lakebase: %s is STOPPED; start it in the workspace (or with the Databricks CLI) to connect", t.name())
	}
	return fmt.Errorf("lakebase: %s is %s and cannot take connections", t.name(), t.state)
}

func newTokenPipeline(cfg *Config, log *slog.Logger, hc *http.Client, wo workspace.Options, src oauth2.TokenSource, stored *oauth.Source) *tokenPipeline {
	p := &tokenPipeline{cfg: cfg, log: log, src: src, stored: stored}
	wo.OnTokenRefused = p.tokenRefused
	p.rest = workspace.New(cfg.DatabricksInstance, pipelineTokens{p}, hc, wo)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	p.ws = &cache.Cache[*oauth2.Token]{Name: "workspace token", Timeout: timeout, OnEvent: p.event, MinSafety: 2 * time.Minute,
		Floor: oauth.HostTokenMargin(cfg.DatabricksInstance),
		Fetch: func(ctx context.Context) (*oauth2.Token, time.Time, error) {
			start := time.Now()
			t, err := oauth.TokenContext(ctx, p.src)
			if err == nil && (t == nil || t.AccessToken == "") {
				err = fmt.Errorf("%w: the token source returned no access token", ErrNoToken)
			}
			ev := Event{Kind: EventWorkspaceToken, Scheme: cfg.AuthScheme, Start: start, Duration: time.Since(start)}
			if err != nil {
				p.obs.emit(ctx, ev, err)
				return nil, time.Time{}, err
			}
			ev.Expiry = t.Expiry
			p.obs.emit(ctx, ev, nil)
			return t, t.Expiry, nil
		}}
	p.cred = &cache.Cache[workspace.DatabaseCredential]{Name: "database credential", Timeout: timeout, OnEvent: p.event, Fetch: p.mint}
	return p
}

func (p *tokenPipeline) event(ev cache.CacheEvent) {
	attrs := []any{slog.String("what", ev.Name), slog.Time("expiry", ev.Expiry),
		slog.String("workspace", p.cfg.DatabricksInstance), slog.String("identity", p.identityForLog())}
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

func (p *tokenPipeline) identityForLog() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.user != "" {
		return p.user
	}
	if p.cfg.User != "" {
		return p.cfg.User
	}
	return p.cfg.OAuthClientID
}

// token returns the cached workspace token.
func (p *tokenPipeline) token(ctx context.Context) (*oauth2.Token, error) {
	t, _, err := p.ws.Get(ctx)
	return t, err
}

// refusedToken reports whether a workspace API refused the token itself: 401, or
// 403 (Databricks answers an expired or revoked token with 403 "Invalid access
// token" as often as with 401).
func refusedToken(err error) bool {
	var ae *workspace.APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden)
}

// tokenRefused is the workspace client's answer to a refused token (401 or 403): the
// token is dropped from memory and from the store (so no other process picks it
// up), and a new one is returned for the one more try the client makes; a 403 with
// the new token is a permission problem and is reported as such. When nothing can
// renew the token, the refusal is the error.
func (p *tokenPipeline) tokenRefused(ctx context.Context, refused string, cause error) (string, error) {
	p.log.Info("lakebase: a workspace API refused the token; getting a new one", slog.String("error", cause.Error()))
	p.obs.emit(ctx, Event{Kind: EventRetry, Scheme: p.cfg.AuthScheme, Cause: httpStatusCause(cause), Start: time.Now()}, nil)
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
		return "", &refusedTokenError{err: cause, off: p.cfg.InitiateOAuth == InitiateOff && p.stored != nil}
	}
	return t.AccessToken, nil
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

// mintFor returns what credentials are minted for: the endpoint or instance of the
// connection string, or (Server only) the one found by listing.
func (p *tokenPipeline) mintFor(ctx context.Context) (endpoint, instance string, err error) {
	if p.cfg.Endpoint != "" || p.cfg.Instance != "" { // known without a request; Project and Server need one
		return p.cfg.Endpoint, p.cfg.Instance, nil
	}
	t, err := p.resolveTarget(ctx)
	if err != nil {
		return "", "", err
	}
	return t.endpoint, t.instance, nil
}

// mint fetches a database credential (the credential cache's Fetch): the stored one
// when it has life left, else a new one from the credential API.
func (p *tokenPipeline) mint(ctx context.Context) (workspace.DatabaseCredential, time.Time, error) {
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

// exclusive runs fn under the store's lock called name when the pipeline keeps
// things in a store, so one process of those sharing the store does the work;
// otherwise it just runs fn.
func (p *tokenPipeline) exclusive(ctx context.Context, name string, fn func() error) error {
	if !p.stores() {
		return fn()
	}
	return settings.Exclusive(ctx, p.stored.Store, name, fn)
}

// mintOrRecall returns the stored credential when it will do, else mints one and
// stores it.
func (p *tokenPipeline) mintOrRecall(ctx context.Context, endpoint, instance string) (workspace.DatabaseCredential, error) {
	var err error
	key, keyed := p.credentialKey(endpoint, instance)
	// A stored credential is used when this process has none yet (a warm start), or
	// when another process minted a newer one than this process holds; a refresh
	// ahead of expiry never takes back the credential it is replacing.
	held, heldExp, has := p.cred.Peek()
	if sc := p.storedCredential(ctx, key, keyed); sc != nil && (!has || sc.Token != held.Token && sc.Expiry.After(heldExp)) {
		p.log.Debug("lakebase: database credential from the store", slog.Time("expiry", sc.Expiry))
		return workspace.DatabaseCredential{Token: sc.Token, Expiry: sc.Expiry}, nil
	}
	var cred workspace.DatabaseCredential
	minted := time.Now()
	mintOnce := func() (err error) {
		start := time.Now()
		ev := Event{Kind: EventCredentialMint, Scheme: p.cfg.AuthScheme, Database: endpoint, API: "autoscaling", Start: start}
		if endpoint == "" {
			ev.Database, ev.API = instance, "provisioned"
		}
		defer func() {
			ev.Duration, ev.Expiry = time.Since(start), cred.Expiry
			p.obs.emit(ctx, ev, err)
		}()
		if endpoint != "" {
			ttl := p.cfg.CredentialLifetime
			if ttl <= 0 {
				ttl = time.Hour
			}
			cred, err = p.rest.GenerateCredential(ctx, workspace.CredentialRequest{Endpoint: endpoint, TTL: ttl, Claims: p.cfg.CredentialClaims})
		} else {
			cred, err = p.rest.GenerateProvisionedCredential(ctx, workspace.ProvisionedCredentialRequest{Instances: []string{instance}, Claims: p.cfg.CredentialClaims})
		}
		return err
	}
	err = mintOnce()
	if isNotFound(err) && p.cfg.Project != "" {
		// The endpoint of a stored or earlier lookup is gone: resolve the branch again
		// (a deleted branch is then a clear error naming it).
		p.dropTarget(ctx)
		if endpoint, instance, err = p.mintFor(ctx); err != nil {
			return workspace.DatabaseCredential{}, err
		}
		key, keyed = p.credentialKey(endpoint, instance)
		err = mintOnce()
	}
	if err != nil {
		return workspace.DatabaseCredential{}, &credentialError{err}
	}
	p.remember(ctx, func(st *settings.Settings) {
		login, ok := p.stored.Current(st)
		if !ok {
			return // the stored login changed meanwhile: this credential is not its
		}
		st.SetCredential(key, &settings.StoredCredential{Token: cred.Token, Expiry: cred.Expiry, Minted: minted,
			Workspace: p.cfg.DatabricksInstance, Database: string(dbName(endpoint, instance)), User: p.cfg.User, Login: login})
	})
	return cred, nil
}

func dbName(endpoint, instance string) settings.Database {
	if endpoint != "" {
		return settings.EndpointDatabase(endpoint)
	}
	return settings.InstanceDatabase(instance)
}

// stores reports whether this pipeline keeps credentials and lookups in its store:
// a store is named (OAuthClient, OAuthPKCE) and InitiateOAuth lets the driver use it.
func (p *tokenPipeline) stores() bool {
	return p.stored != nil && p.cfg.InitiateOAuth != InitiateOff
}

// credentialKey keys a stored credential by everything it was minted for: the
// login (workspace, client, scheme, scope), the database, the user and the
// read-only choice; ok is false when the pipeline keeps nothing in a store.
func (p *tokenPipeline) credentialKey(endpoint, instance string) (settings.CredentialKey, bool) {
	if !p.stores() {
		return settings.CredentialKey{}, false
	}
	return settings.CredentialKey{Login: p.stored.Key(), Database: dbName(endpoint, instance), User: p.cfg.User, ReadOnly: p.cfg.ReadOnly,
		Claims: p.cfg.CredentialClaims.String()}, true
}

// lookupKey keys a stored host lookup: the workspace and the database (or the
// project and branch that name it).
func (p *tokenPipeline) lookupKey(t *target) settings.LookupKey {
	db := dbName(t.endpoint, t.instance)
	if p.cfg.Project != "" {
		db = settings.BranchDatabase(p.cfg.Project, p.cfg.Branch)
	}
	return settings.LookupKey{Workspace: p.cfg.DatabricksInstance, Database: db, ReadOnly: p.cfg.ReadOnly, Pooled: p.cfg.Pooled}
}

func (p *tokenPipeline) storedCredential(ctx context.Context, key settings.CredentialKey, keyed bool) *settings.StoredCredential {
	var out *settings.StoredCredential
	if !keyed {
		return nil
	}
	p.recall(ctx, func(st *settings.Settings) {
		if c := st.Credential(key); c != nil && c.Usable(time.Now()) && p.ofCurrentLogin(st, c.Login) {
			cp := *c
			out = &cp
		}
	})
	return out
}

// ofCurrentLogin reports whether something stored with login belongs to the login
// this pipeline uses: the stored one, with no new login material in the connection
// string. What came from another login (another person, perhaps) is never used.
func (p *tokenPipeline) ofCurrentLogin(st *settings.Settings, login string) bool {
	cur, ok := p.stored.Current(st)
	return ok && login != "" && login == cur
}

// recall reads the store (when the pipeline keeps things there); a store that
// cannot be read only costs the requests it would have saved.
func (p *tokenPipeline) recall(ctx context.Context, fn func(*settings.Settings)) {
	if !p.stores() {
		return
	}
	start := time.Now()
	err := p.stored.Store.Update(ctx, func(st *settings.Settings) (bool, error) { fn(st); return false, nil })
	p.obs.emit(ctx, Event{Kind: EventStoreRead, Scheme: p.cfg.AuthScheme, Start: start, Duration: time.Since(start)}, err)
	if err != nil {
		p.log.Debug("lakebase: the settings store could not be read for a warm start", slog.String("error", err.Error()))
	}
}

// remember writes to the store (when the pipeline keeps things there); a failure is
// logged, never fatal to the login.
func (p *tokenPipeline) remember(ctx context.Context, fn func(*settings.Settings)) {
	if !p.stores() {
		return
	}
	start := time.Now()
	err := p.stored.Store.Update(ctx, func(st *settings.Settings) (bool, error) { fn(st); return true, nil })
	p.obs.emit(ctx, Event{Kind: EventStoreWrite, Scheme: p.cfg.AuthScheme, Start: start, Duration: time.Since(start)}, err)
	if err != nil {
		p.log.Warn("lakebase: could not keep the credential in the settings store", slog.String("error", err.Error()))
	}
}

// loadHostMetadata reads the workspace host's metadata from the store.
func (p *tokenPipeline) loadHostMetadata(ctx context.Context) *oauth.HostMetadata {
	var out *oauth.HostMetadata
	p.recall(ctx, func(st *settings.Settings) {
		if m := st.HostMetadata[strings.ToLower(p.cfg.DatabricksInstance)]; m != nil {
			out = &oauth.HostMetadata{OIDCEndpoint: m.OIDCEndpoint, AccountID: m.AccountID, WorkspaceID: m.WorkspaceID, HostType: m.HostType}
		}
	})
	return out
}

// saveHostMetadata keeps the workspace host's metadata in the store.
func (p *tokenPipeline) saveHostMetadata(ctx context.Context, m *oauth.HostMetadata) {
	p.remember(ctx, func(st *settings.Settings) {
		if st.HostMetadata == nil {
			st.HostMetadata = map[string]*settings.StoredHostMetadata{}
		}
		st.HostMetadata[strings.ToLower(p.cfg.DatabricksInstance)] = &settings.StoredHostMetadata{OIDCEndpoint: m.OIDCEndpoint,
			AccountID: m.AccountID, WorkspaceID: m.WorkspaceID, HostType: m.HostType, Updated: time.Now()}
	})
}

// dropHostMetadata removes the workspace host's metadata from the store (the host
// refused its workspace id).
func (p *tokenPipeline) dropHostMetadata(ctx context.Context) {
	key := strings.ToLower(p.cfg.DatabricksInstance)
	p.log.Info("lakebase: the host refused the workspace id kept in the settings store; reading its metadata again",
		slog.String("entry", "host_metadata["+key+"]"))
	p.remember(ctx, func(st *settings.Settings) { delete(st.HostMetadata, key) })
}

// resolveTarget works out, once, which database to mint for and its host.
func (p *tokenPipeline) resolveTarget(ctx context.Context) (*target, error) {
	if err := p.targetMu.Lock(ctx); err != nil {
		return nil, err
	}
	defer p.targetMu.Unlock()
	p.mu.Lock()
	t := p.target
	p.mu.Unlock()
	if t != nil {
		return t, nil
	}
	// Of a fleet starting at once on one store, one process looks the database up
	// and stores it; the others wait here and find it stored.
	err := p.exclusive(ctx, "lookup", func() (err error) {
		t, err = p.lookUpTarget(ctx)
		return err
	})
	return t, err
}

// lookUpTarget finds the database: from the store (an earlier lookup), else from
// the workspace, storing the answer.
func (p *tokenPipeline) lookUpTarget(ctx context.Context) (*target, error) {
	cfg := p.cfg
	t := &target{instance: cfg.Instance, endpoint: cfg.Endpoint, host: cfg.Server}
	storedHost := "" // what the store said, when the workspace is asked instead
	if t.host == "" && (t.endpoint != "" || t.instance != "" || cfg.Project != "") {
		// A host looked up by an earlier process: hosts do not change. But the store
		// is only a file: what it says is used as is only where the TLS check proves
		// it (storedHostUsable); otherwise the workspace is asked before a credential
		// goes anywhere.
		p.recall(ctx, func(st *settings.Settings) {
			if l := st.Lookup(p.lookupKey(t)); l != nil && (cfg.Project == "" || l.Endpoint != "") {
				t.host, t.state = l.Host, l.State
				if cfg.Project != "" {
					t.endpoint = l.Endpoint
				}
			}
		})
		p.mu.Lock()
		failed := p.storedHostFailed
		p.mu.Unlock()
		if t.host != "" && !failed && p.storedHostUsable(t.host, t.endpoint) {
			t.stored = true
			p.mu.Lock()
			p.target = t
			p.mu.Unlock()
			return t, nil
		}
		storedHost = t.host
		t = &target{instance: cfg.Instance, endpoint: cfg.Endpoint}
	}
	err := func() error {
		switch {
		case cfg.Project != "" && t.host == "":
			return p.resolveBranch(ctx, t)
		case t.endpoint != "" && t.host == "":
			ep, err := p.rest.GetEndpoint(ctx, workspace.GetEndpointRequest{Name: t.endpoint})
			if err != nil {
				return err
			}
			t.state = string(ep.Status.CurrentState)
			if ep.Spec.Disabled {
				return disabledError(ep.Name)
			}
			if err := t.checkState(); err != nil {
				return err
			}
			return t.pickHost(&ep, cfg)
		case t.instance != "" && t.host == "":
			inst, err := p.rest.GetInstance(ctx, workspace.GetInstanceRequest{Name: t.instance})
			if err != nil {
				return err
			}
			t.host, t.state = inst.ReadWriteDNS, string(inst.State)
			if err := t.checkState(); err != nil {
				return err
			}
			if cfg.ReadOnly {
				if t.host = inst.ReadOnlyDNS; t.host == "" {
					return fmt.Errorf("lakebase: instance %s has no read_only_dns (ReadOnly=true needs readable secondaries)", t.instance)
				}
			}
			if t.host == "" {
				return fmt.Errorf("lakebase: instance %s has no read_write_dns yet (state %q)", t.instance, inst.State)
			}
		case t.endpoint == "" && t.instance == "" && t.host != "":
			return p.findByHost(ctx, t)
		case t.endpoint == "" && t.instance == "":
			return &ConfigError{Property: "Endpoint", Err: errors.New("or Instance is needed to mint database credentials (Endpoint=projects/<p>/branches/<b>/endpoints/<e> for Lakebase Autoscaling, Instance=<name> for Provisioned)")}
		}
		return nil
	}()
	if err != nil {
		return nil, &credentialError{err}
	}
	p.log.Debug("lakebase: database resolved", slog.String("host", t.host), slog.String("endpoint", t.endpoint), slog.String("instance", t.instance))
	if storedHost != "" && !strings.EqualFold(storedHost, t.host) {
		p.log.Warn("lakebase: the settings store's host lookup names a host the workspace does not; it was not used and is replaced with the workspace's answer",
			slog.String("entry", "lookups["+p.lookupKey(t).String()+"]"), slog.String("location", p.stored.Store.Location()),
			slog.String("stored_host", storedHost), slog.String("host", t.host))
	}
	p.mu.Lock()
	p.target = t
	p.mu.Unlock()
	if cfg.Server == "" {
		p.remember(ctx, func(st *settings.Settings) {
			l := &settings.StoredLookup{Host: t.host, State: t.state, Updated: time.Now()}
			if cfg.Project != "" {
				l.Endpoint = t.endpoint
			}
			st.SetLookup(p.lookupKey(t), l)
		})
	}
	return t, nil
}

// storedHostUsable reports whether host, read back from the settings store, may be
// used without asking the workspace. The store is a file that whoever can write it
// can change; it must not decide where a database credential goes. A stored host is
// used as is only with SSLMode=verify-full and only when it is in the workspace's
// cloud (oauth.InWorkspaceCloud: the Databricks zones of DatabricksInstance, or
// loopback for a loopback workspace): the certificate check then proves the server
// is that name before any password is sent, and the name is one of the cloud that
// minted the credential, not one an attacker can hold a certificate for. A stored
// endpoint of Project must be of that project (and of Branch when it is named).
// Everything else is looked up again (one request) and the stored entry replaced.
func (p *tokenPipeline) storedHostUsable(host, endpoint string) bool {
	if p.cfg.SSLMode != SSLVerifyFull || !oauth.InWorkspaceCloud(p.cfg.DatabricksInstance, host) {
		return false
	}
	if p.cfg.Project != "" {
		prefix := "projects/" + p.cfg.Project + "/branches/"
		if p.cfg.Branch != "" {
			prefix += p.cfg.Branch + "/endpoints/"
		}
		return strings.HasPrefix(endpoint, prefix)
	}
	return true
}

// forgetStoredHost drops a host that came from the settings store (in memory and in
// the store) after a connect to it failed before any password was sent (its
// certificate did not verify, or nothing listens there): the next login asks the
// workspace. It reports whether there was one to drop.
func (p *tokenPipeline) forgetStoredHost(ctx context.Context, cause error) bool {
	if p.targetMu.Lock(ctx) != nil {
		return false
	}
	defer p.targetMu.Unlock()
	p.mu.Lock()
	t := p.target
	if t == nil || !t.stored {
		p.mu.Unlock()
		return false
	}
	p.target, p.storedHostFailed = nil, true
	p.mu.Unlock()
	key := p.lookupKey(t)
	p.log.Warn("lakebase: a host from the settings store could not be connected to; dropping the stored entry and asking the workspace",
		slog.String("entry", "lookups["+key.String()+"]"), slog.String("location", p.stored.Store.Location()),
		slog.String("host", t.host), slog.String("error", cause.Error()))
	p.remember(ctx, func(st *settings.Settings) {
		if l := st.Lookup(key); l != nil && strings.EqualFold(l.Host, t.host) {
			st.DeleteLookup(key)
		}
	})
	return true
}

// resolveBranch finds the endpoint of Project and Branch (the default branch when
// Branch is empty): its read-write endpoint, or its read-only one with ReadOnly.
func (p *tokenPipeline) resolveBranch(ctx context.Context, t *target) error {
	cfg := p.cfg
	project := "projects/" + cfg.Project
	branch := ""
	if cfg.Branch != "" {
		branch = project + "/branches/" + cfg.Branch
	} else {
		branches, err := p.rest.ListBranches(ctx, workspace.ListBranchesRequest{Project: project})
		if err != nil {
			return notFound(err, "Project", cfg.Project, "project "+project+" does not exist in this workspace, or the identity cannot see it")
		}
		for _, b := range branches {
			if b.IsDefault() {
				branch = b.Name
				break
			}
		}
		if branch == "" {
			return &ConfigError{Property: "Branch", Err: fmt.Errorf("is needed: project %s has no default branch", project)}
		}
	}
	eps, err := p.rest.ListEndpoints(ctx, workspace.ListEndpointsRequest{Branch: branch})
	if err != nil {
		return notFound(err, "Branch", cfg.Branch, "branch "+branch+" does not exist (it may have been deleted or expired), or the identity cannot see it")
	}
	want, kind := workspace.EndpointTypeReadWrite, "read-write"
	if cfg.ReadOnly {
		want, kind = workspace.EndpointTypeReadOnly, "read-only"
	}
	for _, ep := range eps {
		if ep.Type() == want {
			if ep.Spec.Disabled {
				return disabledError(ep.Name)
			}
			t.endpoint, t.host, t.state = ep.Name, ep.Status.Hosts.Host, string(ep.Status.CurrentState)
			if cfg.Pooled {
				// The branch's read-only endpoint is a compute of its own: its pooler is
				// its pooled host, whichever field names it.
				h := ep.Status.Hosts
				if t.host = h.ReadWritePooledHost; cfg.ReadOnly && h.ReadOnlyPooledHost != "" {
					t.host = h.ReadOnlyPooledHost
				}
				if t.host == "" {
					return fmt.Errorf("lakebase: endpoint %s of branch %s has no pooled host: connect to its direct host (Pooled=false)", ep.Name, branch)
				}
			}
			if t.host == "" {
				return fmt.Errorf("lakebase: endpoint %s of branch %s has no host yet (state %q)", ep.Name, branch, ep.Status.CurrentState)
			}
			return t.checkState()
		}
	}
	return fmt.Errorf("lakebase: branch %s has no %s endpoint; create one (lakebase branch create makes it with the branch)", branch, kind)
}

// isNotFound reports whether a workspace API answered 404 (NOT_FOUND).
func isNotFound(err error) bool {
	var ae *workspace.APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// dropTarget forgets the database lookup of Project and Branch, in memory and in the
// store, so the next login resolves it again. Endpoint, Instance and Server name
// their database themselves and keep theirs.
func (p *tokenPipeline) dropTarget(ctx context.Context) {
	if p.cfg.Project == "" {
		return
	}
	if p.targetMu.Lock(ctx) != nil {
		return
	}
	defer p.targetMu.Unlock()
	p.mu.Lock()
	t := p.target
	p.target = nil
	p.mu.Unlock()
	if t == nil {
		t = &target{}
	}
	key := p.lookupKey(t)
	p.remember(ctx, func(st *settings.Settings) { st.DeleteLookup(key) })
}

// notFound turns a 404 of a lookup into a ConfigError naming the property.
func notFound(err error, prop, value, msg string) error {
	var ae *workspace.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		return &ConfigError{Property: prop, Value: value, Err: fmt.Errorf("%s: %s", msg, ae.Message)}
	}
	return err
}

// disabledError is the error of a disabled endpoint: it is never waited for.
func disabledError(endpoint string) error {
	return fmt.Errorf("%w: %s (spec.disabled): it takes no connections and does not wake on one; enable it in the workspace (or with the endpoints API) and connect again", ErrEndpointDisabled, endpoint)
}

// databaseState asks the workspace for the state of this login's endpoint or
// instance now (a connect failed as a waking compute does; the state of the lookup
// may be old): "" when it cannot say, and the error of a disabled endpoint, which
// never wakes.
func (p *tokenPipeline) databaseState(ctx context.Context) (string, error) {
	p.mu.Lock()
	t := p.target
	p.mu.Unlock()
	switch {
	case t == nil:
	case t.endpoint != "":
		ep, err := p.rest.GetEndpoint(ctx, workspace.GetEndpointRequest{Name: t.endpoint})
		if err != nil {
			return "", nil
		}
		if ep.Spec.Disabled {
			return "", disabledError(ep.Name)
		}
		return string(ep.Status.CurrentState), nil
	case t.instance != "":
		inst, err := p.rest.GetInstance(ctx, workspace.GetInstanceRequest{Name: t.instance})
		if err != nil {
			return "", nil
		}
		return string(inst.State), nil
	}
	return "", nil
}

// pickHost sets t.host to the endpoint's host that cfg asks for: direct or pooled,
// read-write or read-only.
func (t *target) pickHost(ep *workspace.Endpoint, cfg *Config) error {
	h := ep.Status.Hosts
	switch {
	case cfg.Pooled && cfg.ReadOnly:
		if t.host = h.ReadOnlyPooledHost; t.host == "" {
			return fmt.Errorf("lakebase: endpoint %s has no read-only pooled host (Pooled=true with ReadOnly=true needs a read replica with a pooler)", ep.Name)
		}
	case cfg.Pooled:
		if t.host = h.ReadWritePooledHost; t.host == "" {
			return fmt.Errorf("lakebase: endpoint %s has no pooled host (status.hosts.read_write_pooled_host is empty): connect to its direct host (Pooled=false)", ep.Name)
		}
	case cfg.ReadOnly:
		if t.host = h.ReadOnlyHost; t.host == "" {
			return fmt.Errorf("lakebase: endpoint %s has no read-only host (ReadOnly=true needs a read replica)", ep.Name)
		}
	default:
		if t.host = h.Host; t.host == "" {
			return fmt.Errorf("lakebase: endpoint %s has no host yet (state %q)", ep.Name, ep.Status.CurrentState)
		}
	}
	return nil
}

// findByHost finds the instance or endpoint whose host is Server.
func (p *tokenPipeline) findByHost(ctx context.Context, t *target) error {
	var errs []error
	insts, err := p.rest.ListInstances(ctx, workspace.ListInstancesRequest{})
	if err == nil {
		for _, in := range insts {
			if strings.EqualFold(in.ReadWriteDNS, t.host) || strings.EqualFold(in.ReadOnlyDNS, t.host) {
				t.instance = in.Name
				return nil
			}
		}
	} else {
		errs = append(errs, err)
	}
	eps, err := p.rest.ListAllEndpoints(ctx)
	if err == nil {
		for _, ep := range eps {
			h := ep.Status.Hosts
			if slices.ContainsFunc([]string{h.Host, h.ReadOnlyHost, h.ReadWritePooledHost, h.ReadOnlyPooledHost},
				func(s string) bool { return s != "" && strings.EqualFold(s, t.host) }) {
				t.endpoint = ep.Name
				return nil
			}
		}
	} else {
		errs = append(errs, err)
	}
	if len(errs) > 0 && refusedToken(errors.Join(errs...)) {
		return errors.Join(errs...)
	}
	cause := ""
	if len(errs) > 0 {
		cause = " (" + errors.Join(errs...).Error() + ")"
	}
	return &ConfigError{Property: "Server", Value: t.host, Err: fmt.Errorf("matches no Lakebase instance or endpoint of the workspace%s; set Instance or Endpoint", cause)}
}

// resolveUser returns the Postgres role: User, else the client id of a service
// principal, else the SCIM userName of the token's identity.
func (p *tokenPipeline) resolveUser(ctx context.Context) (string, error) {
	if p.cfg.User != "" {
		return p.cfg.User, nil
	}
	if p.userIsClientID && p.cfg.OAuthClientID != "" {
		return p.cfg.OAuthClientID, nil
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
		p.recall(ctx, func(st *settings.Settings) {
			if su := st.UserName(p.stored.Key()); su != nil && p.ofCurrentLogin(st, su.Login) {
				u = su.Name
			}
		})
		if u != "" {
			return nil
		}
		var err error
		if u, err = p.rest.Me(ctx); err != nil {
			return fmt.Errorf("lakebase: finding the user name (set User to skip this): %w", err)
		}
		p.remember(ctx, func(st *settings.Settings) {
			if login, ok := p.stored.Current(st); ok {
				st.SetUserName(p.stored.Key(), &settings.StoredUser{Name: u, Login: login})
			}
		})
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

// login returns a login for a new session. refused, when set, is a credential the
// server just refused: the login uses one whose minting starts after the refusal.
//
// The three things a login needs — the credential, the host, the user name — are
// worked out at once: on a cold start they wait together for the one workspace
// token, then go to the workspace in one parallel wave (mint ‖ host lookup ‖ SCIM
// Me); on a warm start (a store holding all three) there is no request at all.
func (p *tokenPipeline) login(ctx context.Context, refused string) (loginInfo, error) {
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
		if _, err := p.token(ctx); err != nil {
			return loginInfo{}, err
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
		return loginInfo{}, err
	}
	if p.hostMeta != nil {
		p.hostMeta.Flush(ctx) // outside every store lock
	}
	host, port := splitHostPort(t.host, p.cfg.Port)
	return loginInfo{host: host, port: port, user: user, password: cred.Token, expiry: cred.Expiry, retryable: true,
		database: t.name(), state: t.state, pooled: p.cfg.Pooled, storedHost: t.stored}, nil
}

// needsToken reports whether this login will call the workspace: something it
// needs is neither in memory nor in the store.
func (p *tokenPipeline) needsToken(ctx context.Context, fresh bool) bool {
	if fresh {
		return true
	}
	p.mu.Lock()
	haveTarget, haveUser := p.target != nil, p.user != ""
	p.mu.Unlock()
	haveUser = haveUser || p.cfg.User != "" || p.userIsClientID && p.cfg.OAuthClientID != ""
	_, exp, haveCred := p.cred.Peek()
	haveCred = haveCred && (exp.IsZero() || time.Until(exp) > time.Minute)
	if haveTarget && haveUser && haveCred {
		return false
	}
	if !p.stores() || p.cfg.Endpoint == "" && p.cfg.Instance == "" {
		return true // nothing stored to start warm from, or a listing to make
	}
	key, _ := p.credentialKey(p.cfg.Endpoint, p.cfg.Instance)
	lookup := p.lookupKey(&target{endpoint: p.cfg.Endpoint, instance: p.cfg.Instance})
	missing := false
	p.recall(ctx, func(st *settings.Settings) {
		if _, ok := p.stored.Current(st); !ok {
			missing = true // nothing stored, or the connection string brings a new login
			return
		}
		if !haveCred {
			c := st.Credential(key)
			missing = missing || c == nil || !c.Usable(time.Now()) || !p.ofCurrentLogin(st, c.Login)
		}
		if !haveTarget && p.cfg.Server == "" {
			l := st.Lookup(lookup)
			missing = missing || l == nil || !p.storedHostUsable(l.Host, p.cfg.Endpoint)
		}
		if !haveUser {
			su := st.UserName(p.stored.Key())
			missing = missing || su == nil || !p.ofCurrentLogin(st, su.Login)
		}
	})
	return missing
}

// forgetCredential drops the credential from memory and from the store.
func (p *tokenPipeline) forgetCredential() {
	p.cred.Invalidate(nil)
	if p.stores() {
		p.remember(context.Background(), func(st *settings.Settings) { st.ForgetCredentials(p.stored.Key()) })
	}
}

func (p *tokenPipeline) describe(s *Status) {
	if t, _, ok := p.ws.Peek(); ok {
		s.TokenExpiry = t.Expiry
	}
	if _, exp, ok := p.cred.Peek(); ok {
		s.CredentialExpiry = exp
	}
	p.mu.Lock()
	if p.target != nil {
		s.Endpoint, s.Instance = p.target.endpoint, p.target.instance
	}
	p.mu.Unlock()
}

func (p *tokenPipeline) logout(ctx context.Context) error {
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

func (p *tokenPipeline) hasStoredLogin(ctx context.Context) (bool, error) {
	if p.stored == nil {
		return false, nil
	}
	return p.stored.HasStoredLogin(ctx)
}

func (p *tokenPipeline) settingsLocation() string {
	if p.stored == nil {
		return ""
	}
	return p.stored.Store.Location()
}

func (p *tokenPipeline) stats() TokenStats {
	return TokenStats{WorkspaceToken: p.ws.Stats(), Credential: p.cred.Stats()}
}

func (p *tokenPipeline) tokenSource() oauth2.TokenSource { return pipelineTokens{p} }

func (p *tokenPipeline) close() {
	p.cred.Close()
	p.ws.Close()
}

// adopt makes a token obtained by a login step the connector's workspace token, and
// drops what was derived from the previous one (a new login may be another person).
func (p *tokenPipeline) adopt(t *oauth2.Token) {
	p.ws.Set(t, t.Expiry)
	p.mu.Lock()
	p.user = ""
	p.mu.Unlock()
	p.cred.Invalidate(nil)
}

// pipelineTokens is Connector.TokenSource: the pipeline's cached workspace token.
type pipelineTokens struct{ p *tokenPipeline }

func (t pipelineTokens) Token() (*oauth2.Token, error) { return t.TokenContext(context.Background()) }

func (t pipelineTokens) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	tok, err := t.p.token(ctx)
	if err != nil {
		return nil, err
	}
	c := *tok // the caller may keep or change it; the cache's copy stays as it is
	return &c, nil
}
