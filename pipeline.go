package lakebase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/oauth"
)

// tokenPipeline is the login of every token scheme: a workspace token from the
// scheme's oauth2.TokenSource (cached, refreshed ahead of expiry), exchanged for a
// database credential (cached likewise), plus the host and the user name.
type tokenPipeline struct {
	cfg *Config
	log *slog.Logger
	api *oauth.API
	src oauth2.TokenSource
	// stored is the scheme's token store, for the schemes that keep one (OAuthClient,
	// OAuthPKCE); nil otherwise.
	stored *oauth.Source
	// userIsClientID: the Postgres role of this identity is its client id (service
	// principals), so no SCIM lookup is needed.
	userIsClientID bool

	ws   *oauth.Cache[*oauth2.Token]
	cred *oauth.Cache[oauth.DatabaseCredential]

	mu     sync.Mutex
	target *target
	user   string
}

// target is the database a credential is minted for.
type target struct {
	instance string // Provisioned
	endpoint string // Autoscaling
	host     string
	state    string // current_state (Autoscaling) or state (Provisioned) when looked up
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

func newTokenPipeline(cfg *Config, log *slog.Logger, api *oauth.API, src oauth2.TokenSource, stored *oauth.Source) *tokenPipeline {
	p := &tokenPipeline{cfg: cfg, log: log, api: api, src: src, stored: stored}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	p.ws = &oauth.Cache[*oauth2.Token]{Name: "workspace token", Timeout: timeout, OnEvent: p.event, MinSafety: 2 * time.Minute,
		Fetch: func(ctx context.Context) (*oauth2.Token, time.Time, error) {
			t, err := oauth.TokenContext(ctx, p.src)
			if err != nil {
				return nil, time.Time{}, err
			}
			if t == nil || t.AccessToken == "" {
				return nil, time.Time{}, fmt.Errorf("%w: the token source returned no access token", ErrNoToken)
			}
			return t, t.Expiry, nil
		}}
	p.cred = &oauth.Cache[oauth.DatabaseCredential]{Name: "database credential", Timeout: timeout, OnEvent: p.event, Fetch: p.mint}
	return p
}

func (p *tokenPipeline) event(ev oauth.CacheEvent) {
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
	var ae *oauth.APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden)
}

// withToken runs fn with the workspace token. When an API refuses the token (401 or
// 403), the token is dropped from memory and from the store (so no other process
// picks it up), a new one is obtained, and fn runs once more; a 403 with the new
// token is a permission problem and is reported as such.
func (p *tokenPipeline) withToken(ctx context.Context, fn func(tok string) error) error {
	t, err := p.token(ctx)
	if err != nil {
		return err
	}
	err = fn(t.AccessToken)
	if !refusedToken(err) {
		return err
	}
	refused := t.AccessToken
	p.log.Info("lakebase: a workspace API refused the token; getting a new one", slog.String("error", err.Error()))
	p.ws.Invalidate(func(t *oauth2.Token) bool { return t.AccessToken == refused })
	if r, ok := p.src.(interface{ TokenRefused(string) }); ok {
		r.TokenRefused(refused) // e.g. the CLI: ask it for a fresh token, not its cached one
	}
	if p.stored != nil {
		if derr := p.stored.Drop(ctx, refused); derr != nil {
			p.log.Warn("lakebase: could not drop the refused token from the store", slog.String("error", derr.Error()))
		}
	}
	if t, _, err = p.ws.GetFetchedAfter(ctx, time.Now()); err != nil {
		return err
	}
	return fn(t.AccessToken)
}

// mint fetches a database credential (the credential cache's Fetch).
func (p *tokenPipeline) mint(ctx context.Context) (oauth.DatabaseCredential, time.Time, error) {
	t, err := p.resolveTarget(ctx)
	if err != nil {
		return oauth.DatabaseCredential{}, time.Time{}, err
	}
	var cred oauth.DatabaseCredential
	err = p.withToken(ctx, func(tok string) error {
		var err error
		if t.endpoint != "" {
			cred, err = p.api.MintAutoscaling(ctx, tok, t.endpoint, time.Hour)
		} else {
			cred, err = p.api.MintProvisioned(ctx, tok, t.instance)
		}
		return err
	})
	if err != nil {
		return oauth.DatabaseCredential{}, time.Time{}, &credentialError{err}
	}
	return cred, cred.Expiry, nil
}

// resolveTarget works out, once, which database to mint for and its host.
func (p *tokenPipeline) resolveTarget(ctx context.Context) (*target, error) {
	p.mu.Lock()
	t := p.target
	p.mu.Unlock()
	if t != nil {
		return t, nil
	}
	cfg := p.cfg
	t = &target{instance: cfg.Instance, endpoint: cfg.Endpoint, host: cfg.Server}
	err := p.withToken(ctx, func(tok string) error {
		switch {
		case t.endpoint != "" && t.host == "":
			ep, err := p.api.GetEndpoint(ctx, tok, t.endpoint)
			if err != nil {
				return err
			}
			t.host, t.state = ep.Status.Hosts.Host, ep.Status.CurrentState
			if err := t.checkState(); err != nil {
				return err
			}
			if cfg.ReadOnly {
				if t.host = ep.Status.Hosts.ReadOnlyHost; t.host == "" {
					return fmt.Errorf("lakebase: endpoint %s has no read-only host (ReadOnly=true needs a read replica)", t.endpoint)
				}
			}
			if t.host == "" {
				return fmt.Errorf("lakebase: endpoint %s has no host yet (state %q)", t.endpoint, ep.Status.CurrentState)
			}
		case t.instance != "" && t.host == "":
			inst, err := p.api.GetInstance(ctx, tok, t.instance)
			if err != nil {
				return err
			}
			t.host, t.state = inst.ReadWriteDNS, inst.State
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
			return p.findByHost(ctx, tok, t)
		case t.endpoint == "" && t.instance == "":
			return &ConfigError{Property: "Endpoint", Err: errors.New("or Instance is needed to mint database credentials (Endpoint=projects/<p>/branches/<b>/endpoints/<e> for Lakebase Autoscaling, Instance=<name> for Provisioned)")}
		}
		return nil
	})
	if err != nil {
		return nil, &credentialError{err}
	}
	p.log.Debug("lakebase: database resolved", slog.String("host", t.host), slog.String("endpoint", t.endpoint), slog.String("instance", t.instance))
	p.mu.Lock()
	p.target = t
	p.mu.Unlock()
	return t, nil
}

// findByHost finds the instance or endpoint whose host is Server.
func (p *tokenPipeline) findByHost(ctx context.Context, tok string, t *target) error {
	var errs []error
	insts, err := p.api.ListInstances(ctx, tok)
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
	eps, err := p.api.ListEndpoints(ctx, tok)
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
	p.mu.Lock()
	u := p.user
	p.mu.Unlock()
	if u != "" {
		return u, nil
	}
	err := p.withToken(ctx, func(tok string) error {
		var err error
		u, err = p.api.Me(ctx, tok)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("lakebase: finding the user name (set User to skip this): %w", err)
	}
	p.mu.Lock()
	p.user = u
	p.mu.Unlock()
	return u, nil
}

// login returns a login for a new session. refused, when set, is a credential the
// server just refused: the login uses one whose minting starts after the refusal.
func (p *tokenPipeline) login(ctx context.Context, refused string) (loginInfo, error) {
	var cred oauth.DatabaseCredential
	var err error
	if refused != "" {
		p.cred.Invalidate(func(c oauth.DatabaseCredential) bool { return c.Token == refused })
		cred, _, err = p.cred.GetFetchedAfter(ctx, time.Now())
	} else {
		cred, _, err = p.cred.Get(ctx)
	}
	if err != nil {
		return loginInfo{}, err
	}
	user, err := p.resolveUser(ctx)
	if err != nil {
		return loginInfo{}, err
	}
	t, err := p.resolveTarget(ctx)
	if err != nil {
		return loginInfo{}, err
	}
	return loginInfo{host: t.host, port: p.cfg.Port, user: user, password: cred.Token, expiry: cred.Expiry, retryable: true,
		database: t.name(), state: t.state}, nil
}

func (p *tokenPipeline) forgetCredential() { p.cred.Invalidate(nil) }

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
	if p.stored == nil || p.cfg.InitiateOAuth == InitiateOff {
		return nil
	}
	return p.stored.Forget(ctx)
}

func (p *tokenPipeline) settingsLocation() string {
	if p.stored == nil || p.cfg.InitiateOAuth == InitiateOff {
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
