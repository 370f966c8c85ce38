package lakebase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lakebase-go/lakebase/oauth"
)

// Errors of the token pipeline, re-exported from package oauth so callers need one import.
var (
	// ErrReloginRequired: the refresh token was refused (invalid_grant); a person must log in again.
	ErrReloginRequired = oauth.ErrReloginRequired
	// ErrNoToken: no usable token, and the InitiateOAuth mode forbids getting one.
	ErrNoToken = oauth.ErrNoToken
	// ErrSettingsFile: the OAuthSettingsLocation file cannot be used (it is left as it was).
	ErrSettingsFile = oauth.ErrSettingsFile
)

type (
	// TokenError is an error of the workspace's OIDC token endpoint; Code holds the
	// RFC 6749 error code (invalid_client, invalid_grant, ...).
	TokenError = oauth.TokenError
	// APIError is an error of a Databricks REST API, such as minting a credential.
	APIError = oauth.APIError
	// SettingsFileError reports an unusable OAuthSettingsLocation file.
	SettingsFileError = oauth.SettingsFileError
)

// ErrCredential is matched by a failure to mint a database credential or to find
// the database: errors.Is(err, lakebase.ErrCredential).
var ErrCredential = errors.New("lakebase: database credential")

type credentialError struct{ err error }

func (e *credentialError) Error() string        { return e.err.Error() }
func (e *credentialError) Unwrap() error        { return e.err }
func (e *credentialError) Is(target error) bool { return target == ErrCredential }

// target is the database a credential is minted for.
type target struct {
	instance string // Provisioned
	endpoint string // Autoscaling
	host     string
}

// oauthAuth is the token pipeline of AuthScheme OAuthClient and OAuthPKCE: a cached
// workspace token (from an oauth.Source) and a cached database credential.
type oauthAuth struct {
	c       *Connector
	cfg     *Config
	log     *slog.Logger
	disc    *oauth.Discovery
	api     *oauth.API
	src     *oauth.Source
	pending oauth.Store // where pending PKCE verifiers live
	ws      *oauth.Cache[*oauth.Token]
	cred    *oauth.Cache[oauth.Credential]

	mu     sync.Mutex
	target *target
	user   string
}

// DefaultSettingsLocation returns the default OAuthSettingsLocation for OAuthPKCE:
// <user config dir>/lakebase/OAuthSettings.txt.
func DefaultSettingsLocation() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "lakebase", "OAuthSettings.txt"), nil
}

func newOAuthAuth(c *Connector) (*oauthAuth, error) {
	cfg := c.cfg
	a := &oauthAuth{c: c, cfg: cfg, log: c.logger}
	hc := c.opts.httpClient
	retry := oauth.Retry{}
	onRetry := func(op string, attempt int, wait time.Duration, err error) {
		a.log.Info("lakebase: retrying after a transient failure", slog.String("op", op),
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", err.Error()))
	}
	a.disc = &oauth.Discovery{HTTP: hc, Workspace: cfg.DatabricksInstance, Retry: retry,
		Override: oauth.Endpoints{AuthorizationURL: cfg.OAuthAuthorizationURL, TokenURL: cfg.OAuthAccessTokenURL}}
	a.api = &oauth.API{HTTP: hc, Workspace: cfg.DatabricksInstance, Retry: retry, OnRetry: onRetry}

	store, err := a.openStore()
	if err != nil {
		return nil, err
	}
	a.pending = store
	if cfg.OAuthSettingsLocation == "" && cfg.AuthScheme == AuthOAuthClient {
		a.pending = oauth.MemoryStore("\x00lakebase-pending")
	}
	if cfg.InitiateOAuth == InitiateOff && cfg.OAuthSettingsLocation == "" {
		a.pending = oauth.MemoryStore("\x00lakebase-pending")
	}

	scheme := oauth.SchemeClient
	if cfg.AuthScheme == AuthOAuthPKCE {
		scheme = oauth.SchemePKCE
	}
	a.src = &oauth.Source{
		Scheme: scheme, Mode: string(cfg.InitiateOAuth), Workspace: cfg.DatabricksInstance,
		ClientID: cfg.OAuthClientID, ClientSecret: cfg.OAuthClientSecret, Scope: cfg.Scope,
		AccessToken: cfg.OAuthAccessToken, RefreshToken: cfg.OAuthRefreshToken, Expiry: cfg.givenExpiry(),
		Verifier: cfg.OAuthVerifier, CallbackURL: cfg.CallbackURL,
		Store: store, Discovery: a.disc, HTTP: hc, Retry: retry, OnRetry: onRetry,
		OnToken: func(origin string, t *oauth.Token) {
			a.log.Debug("lakebase: workspace token", slog.String("origin", origin), slog.Time("expiry", t.Expiry),
				slog.String("workspace", cfg.DatabricksInstance), slog.String("client_id", cfg.OAuthClientID))
		},
	}
	if cfg.AuthScheme == AuthOAuthPKCE {
		a.src.Login = a.desktopLogin
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	a.ws = &oauth.Cache[*oauth.Token]{Name: "workspace token", Timeout: timeout, OnEvent: a.event,
		Fetch: func(ctx context.Context) (*oauth.Token, time.Time, error) {
			t, err := a.fetchWorkspaceToken(ctx)
			if err != nil {
				return nil, time.Time{}, err
			}
			return t, t.Expiry, nil
		}}
	a.cred = &oauth.Cache[oauth.Credential]{Name: "database credential", Timeout: timeout, OnEvent: a.event, Fetch: a.mint}
	return a, nil
}

// fetchWorkspaceToken gets a workspace token the way the AuthScheme says.
func (a *oauthAuth) fetchWorkspaceToken(ctx context.Context) (*oauth.Token, error) {
	switch a.cfg.AuthScheme {
	case AuthDatabricksCLI:
		t, err := oauth.CLIToken(ctx, "", a.cfg.DatabricksInstance, a.cfg.Profile)
		if err == nil {
			a.log.Debug("lakebase: workspace token", slog.String("origin", "databricks auth token"), slog.Time("expiry", t.Expiry))
		}
		return t, err
	case AuthAzureAD:
		return oauth.EntraClientCredentials(ctx, a.c.opts.httpClient, a.cfg.AzureAuthorityHost, a.cfg.AzureTenant,
			a.cfg.OAuthClientID, a.cfg.OAuthClientSecret, AzureDatabricksResource, oauth.Retry{})
	case AuthAzureMSI:
		return oauth.ManagedIdentityToken(ctx, a.c.opts.httpClient, a.cfg.AzureMSIEndpoint, a.cfg.OAuthClientID,
			AzureDatabricksResource, oauth.Retry{})
	case AuthOIDCFederation:
		env := a.cfg.OIDCTokenEnv
		subject, err := oauth.ReadSubjectToken(a.cfg.OIDCTokenFile, env)
		if err != nil {
			return nil, err
		}
		tc, err := a.tokenClient(ctx)
		if err != nil {
			return nil, err
		}
		t, err := tc.TokenExchange(ctx, subject, a.cfg.Scope)
		if err == nil {
			a.log.Debug("lakebase: workspace token", slog.String("origin", "token exchange"), slog.Time("expiry", t.Expiry))
		}
		return t, err
	}
	return a.src.Token(ctx)
}

// givenExpiry is the expiry of OAuthAccessToken from OAuthExpiresIn and
// OAuthTokenTimestamp: zero when unknown.
func (c *Config) givenExpiry() time.Time {
	switch {
	case c.OAuthExpiresIn < 0:
		return oauth.NeverExpires
	case c.OAuthExpiresIn == 0:
		return time.Time{}
	case c.OAuthTokenTimestamp.IsZero():
		return time.Now().Add(c.OAuthExpiresIn)
	}
	return c.OAuthTokenTimestamp.Add(c.OAuthExpiresIn)
}

// openStore opens the token store of OAuthSettingsLocation. OAuthClient without a
// location keeps tokens in memory (client credentials can always be fetched again);
// OAuthPKCE defaults to a file, since a login would be lost otherwise.
func (a *oauthAuth) openStore() (oauth.Store, error) {
	loc := a.cfg.OAuthSettingsLocation
	if loc == "" {
		if a.cfg.AuthScheme == AuthOAuthClient {
			return oauth.NewPrivateMemoryStore(), nil
		}
		var err error
		if loc, err = DefaultSettingsLocation(); err != nil {
			return nil, &ConfigError{Property: "OAuthSettingsLocation", Err: fmt.Errorf("has no default here (%v); set it to a file path or memory://<id>", err)}
		}
	}
	st, err := oauth.OpenStore(loc)
	if err != nil {
		return nil, &ConfigError{Property: "OAuthSettingsLocation", Value: loc, Err: err}
	}
	if a.cfg.AuthScheme == AuthOAuthClient {
		return &fallbackStore{Store: st, log: a.log}, nil
	}
	return st, nil
}

// fallbackStore is the OAuthClient store: when its file cannot be written (a
// read-only file system, say), tokens stay in memory and a warning is logged.
type fallbackStore struct {
	oauth.Store
	log  *slog.Logger
	once sync.Once
	mem  oauth.Store
	mu   sync.Mutex
}

func (f *fallbackStore) Update(ctx context.Context, fn func(*oauth.Settings) (bool, error)) error {
	f.mu.Lock()
	mem := f.mem
	f.mu.Unlock()
	if mem != nil {
		return mem.Update(ctx, fn)
	}
	err := f.Store.Update(ctx, fn)
	var se *oauth.SettingsFileError
	if errors.As(err, &se) && se.Unwritable {
		f.once.Do(func() {
			f.log.Warn("lakebase: OAuthSettingsLocation cannot be written; keeping tokens in memory",
				slog.String("location", f.Store.Location()), slog.String("error", se.Error()))
			f.mu.Lock()
			f.mem = oauth.NewPrivateMemoryStore()
			f.mu.Unlock()
		})
		return f.mem.Update(ctx, fn)
	}
	return err
}

func (a *oauthAuth) event(ev oauth.CacheEvent) {
	attrs := []any{slog.String("what", ev.Name), slog.Time("expiry", ev.Expiry),
		slog.String("workspace", a.cfg.DatabricksInstance), slog.String("identity", a.identityForLog())}
	switch ev.Kind {
	case "fetched":
		a.log.Info("lakebase: fetched", attrs...)
	case "refreshed-ahead":
		a.log.Info("lakebase: refreshed ahead of expiry", attrs...)
	case "refresh-failed-kept":
		a.log.Warn("lakebase: refresh failed; keeping the still-valid one", append(attrs, slog.String("error", ev.Err.Error()))...)
	case "fetch-failed":
		a.log.Error("lakebase: fetch failed", append(attrs, slog.String("error", ev.Err.Error()))...)
	}
}

func (a *oauthAuth) identityForLog() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.user != "" {
		return a.user
	}
	if a.cfg.User != "" {
		return a.cfg.User
	}
	return a.cfg.OAuthClientID
}

// workspaceToken returns the cached workspace token, dropping it first if it is
// refused (a 401 from an API).
func (a *oauthAuth) workspaceToken(ctx context.Context) (string, error) {
	t, _, err := a.ws.Get(ctx)
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// withToken runs fn with the workspace token; when an API answers 401, the token is
// dropped and fn runs once more with a fresh one.
func (a *oauthAuth) withToken(ctx context.Context, fn func(tok string) error) error {
	tok, err := a.workspaceToken(ctx)
	if err != nil {
		return err
	}
	err = fn(tok)
	var ae *oauth.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized {
		a.ws.Invalidate(func(t *oauth.Token) bool { return t.AccessToken == tok })
		if tok, err = a.workspaceToken(ctx); err != nil {
			return err
		}
		err = fn(tok)
	}
	return err
}

// mint fetches a database credential (the credential cache's Fetch).
func (a *oauthAuth) mint(ctx context.Context) (oauth.Credential, time.Time, error) {
	t, err := a.resolveTarget(ctx)
	if err != nil {
		return oauth.Credential{}, time.Time{}, err
	}
	var cred oauth.Credential
	err = a.withToken(ctx, func(tok string) error {
		var err error
		if t.endpoint != "" {
			cred, err = a.api.MintAutoscaling(ctx, tok, t.endpoint, time.Hour)
		} else {
			cred, err = a.api.MintProvisioned(ctx, tok, t.instance)
		}
		return err
	})
	if err != nil {
		return oauth.Credential{}, time.Time{}, &credentialError{err}
	}
	return cred, cred.Expiry, nil
}

// resolveTarget works out, once, which database to mint for and its host.
func (a *oauthAuth) resolveTarget(ctx context.Context) (*target, error) {
	a.mu.Lock()
	t := a.target
	a.mu.Unlock()
	if t != nil {
		return t, nil
	}
	cfg := a.cfg
	t = &target{instance: cfg.Instance, endpoint: cfg.Endpoint, host: cfg.Server}
	err := a.withToken(ctx, func(tok string) error {
		switch {
		case t.endpoint != "" && t.host == "":
			ep, err := a.api.GetEndpoint(ctx, tok, t.endpoint)
			if err != nil {
				return err
			}
			t.host = ep.Status.Hosts.Host
			if cfg.ReadOnly {
				if t.host = ep.Status.Hosts.ReadOnlyHost; t.host == "" {
					return fmt.Errorf("lakebase: endpoint %s has no read-only host (ReadOnly=true needs a read replica)", t.endpoint)
				}
			}
			if t.host == "" {
				return fmt.Errorf("lakebase: endpoint %s has no host yet (state %q)", t.endpoint, ep.Status.CurrentState)
			}
		case t.instance != "" && t.host == "":
			inst, err := a.api.GetInstance(ctx, tok, t.instance)
			if err != nil {
				return err
			}
			t.host = inst.ReadWriteDNS
			if cfg.ReadOnly {
				if t.host = inst.ReadOnlyDNS; t.host == "" {
					return fmt.Errorf("lakebase: instance %s has no read_only_dns (ReadOnly=true needs readable secondaries)", t.instance)
				}
			}
			if t.host == "" {
				return fmt.Errorf("lakebase: instance %s has no read_write_dns yet (state %q)", t.instance, inst.State)
			}
		case t.endpoint == "" && t.instance == "" && t.host != "":
			return a.findByHost(ctx, tok, t)
		case t.endpoint == "" && t.instance == "":
			return &ConfigError{Property: "Endpoint", Err: errors.New("or Instance is needed to mint database credentials (Endpoint=projects/<p>/branches/<b>/endpoints/<e> for Lakebase Autoscaling, Instance=<name> for Provisioned)")}
		}
		return nil
	})
	if err != nil {
		return nil, &credentialError{err}
	}
	a.log.Debug("lakebase: database resolved", slog.String("host", t.host), slog.String("endpoint", t.endpoint), slog.String("instance", t.instance))
	a.mu.Lock()
	a.target = t
	a.mu.Unlock()
	return t, nil
}

// findByHost finds the instance or endpoint whose host is Server.
func (a *oauthAuth) findByHost(ctx context.Context, tok string, t *target) error {
	var errs []error
	insts, err := a.api.ListInstances(ctx, tok)
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
	eps, err := a.api.ListEndpoints(ctx, tok)
	if err == nil {
		for _, ep := range eps {
			if strings.EqualFold(ep.Status.Hosts.Host, t.host) || strings.EqualFold(ep.Status.Hosts.ReadOnlyHost, t.host) {
				t.endpoint = ep.Name
				return nil
			}
		}
	} else {
		errs = append(errs, err)
	}
	cause := ""
	if len(errs) > 0 {
		cause = " (" + errors.Join(errs...).Error() + ")"
	}
	return &ConfigError{Property: "Server", Value: t.host, Err: fmt.Errorf("matches no Lakebase instance or endpoint of the workspace%s; set Instance or Endpoint", cause)}
}

// resolveUser returns the Postgres role: User, else the client id for OAuthClient,
// else the SCIM userName of the token's identity.
func (a *oauthAuth) resolveUser(ctx context.Context) (string, error) {
	if a.cfg.User != "" {
		return a.cfg.User, nil
	}
	if (a.cfg.AuthScheme == AuthOAuthClient || a.cfg.AuthScheme == AuthAzureAD) && a.cfg.OAuthClientID != "" {
		return a.cfg.OAuthClientID, nil
	}
	a.mu.Lock()
	u := a.user
	a.mu.Unlock()
	if u != "" {
		return u, nil
	}
	err := a.withToken(ctx, func(tok string) error {
		var err error
		u, err = a.api.Me(ctx, tok)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("lakebase: finding the user name (set User to skip this): %w", err)
	}
	a.mu.Lock()
	a.user = u
	a.mu.Unlock()
	return u, nil
}

func (a *oauthAuth) login(ctx context.Context, refused string) (loginInfo, error) {
	var cred oauth.Credential
	var err error
	if refused != "" {
		// The server refused this credential now: use one whose minting starts later.
		a.cred.Invalidate(func(c oauth.Credential) bool { return c.Token == refused })
		cred, _, err = a.cred.GetFetchedAfter(ctx, time.Now())
	} else {
		cred, _, err = a.cred.Get(ctx)
	}
	if err != nil {
		return loginInfo{}, err
	}
	user, err := a.resolveUser(ctx)
	if err != nil {
		return loginInfo{}, err
	}
	t, err := a.resolveTarget(ctx)
	if err != nil {
		return loginInfo{}, err
	}
	return loginInfo{host: t.host, port: a.cfg.Port, user: user, password: cred.Token}, nil
}

func (a *oauthAuth) retryable() bool { return true }

func (a *oauthAuth) close() {
	a.cred.Close()
	a.ws.Close()
}

// desktopLogin runs the browser login of OAuthPKCE (GETANDREFRESH with no token, or
// GetOAuthAccessToken AuthMode='APP').
func (a *oauthAuth) desktopLogin(ctx context.Context) (*oauth.Token, error) {
	ep, err := a.disc.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	d := &oauth.DesktopLogin{
		AuthorizationURL: ep.AuthorizationURL,
		Client:           &oauth.TokenClient{HTTP: a.c.opts.httpClient, TokenURL: ep.TokenURL, ClientID: a.cfg.OAuthClientID, ClientSecret: a.cfg.OAuthClientSecret},
		CallbackURL:      a.cfg.CallbackURL,
		Scope:            a.cfg.Scope,
		OpenBrowser:      a.c.opts.openBrowser,
		Out:              a.c.opts.stderr,
	}
	a.log.Info("lakebase: starting the browser login", slog.String("workspace", a.cfg.DatabricksInstance))
	return d.Run(ctx)
}
