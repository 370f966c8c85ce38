package lakebase

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/storedproc"
)

// procedure answers a virtual procedure call with bound inputs.
func (c *Connector) procedure(ctx context.Context, name string, in map[string]string) (driver.Rows, error) {
	a, ok := c.auth.(*oauthAuth)
	if !ok {
		return nil, &storedproc.Error{Proc: name, Msg: "the OAuth procedures need AuthScheme=OAuthClient or OAuthPKCE and DatabricksInstance"}
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	p := storedproc.Lookup(name)
	switch p.Name {
	case storedproc.GetOAuthAuthorizationURL:
		return a.procAuthorizationURL(ctx, p, in)
	case storedproc.GetOAuthAccessToken:
		return a.procAccessToken(ctx, p, in)
	case storedproc.RefreshOAuthAccessToken:
		return a.procRefresh(ctx, p, in)
	}
	return nil, fmt.Errorf("lakebase: unknown procedure %s", name)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (a *oauthAuth) procAuthorizationURL(ctx context.Context, p *storedproc.Procedure, in map[string]string) (driver.Rows, error) {
	ep, err := a.disc.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	callback := orDefault(in["CallbackUrl"], orDefault(a.cfg.CallbackURL, DefaultCallbackURL))
	scope := orDefault(in["Scope"], a.pkceScope())
	state := orDefault(in["State"], oauth.NewState())
	verifier := oauth.NewVerifier()
	err = a.pending.Update(ctx, func(st *oauth.Settings) (bool, error) {
		if st.Pending == nil {
			st.Pending = map[string]*oauth.Pending{}
		}
		st.Pending[state] = &oauth.Pending{Verifier: verifier, CallbackURL: callback, Scope: scope, Key: a.src.Key(), Created: time.Now()}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	u := oauth.AuthCodeURL(ep.AuthorizationURL, a.cfg.OAuthClientID, callback, scope, state, verifier)
	a.log.Info("lakebase: authorization URL made", "workspace", a.cfg.DatabricksInstance, "callback", callback)
	return storedproc.NewRows(p.Columns, []driver.Value{u, state, verifier}), nil
}

// pkceScope is the scope of a person's login: Scope for OAuthPKCE; for OAuthClient,
// whose Scope is for client credentials, the user-to-machine default.
func (a *oauthAuth) pkceScope() string {
	if a.cfg.AuthScheme == AuthOAuthPKCE {
		return a.cfg.Scope
	}
	return DefaultPKCEScope
}

func (a *oauthAuth) tokenClient(ctx context.Context) (*oauth.TokenClient, error) {
	ep, err := a.disc.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	return &oauth.TokenClient{HTTP: a.c.opts.httpClient, TokenURL: ep.TokenURL, ClientID: a.cfg.OAuthClientID, ClientSecret: a.cfg.OAuthClientSecret}, nil
}

func (a *oauthAuth) procAccessToken(ctx context.Context, p *storedproc.Procedure, in map[string]string) (driver.Rows, error) {
	var tok *oauth.Token
	var err error
	switch mode := strings.ToUpper(orDefault(in["AuthMode"], "WEB")); mode {
	case "APP":
		tok, err = a.desktopLogin(ctx)
	case "WEB":
		tok, err = a.exchangeWeb(ctx, p, in)
	default:
		return nil, &storedproc.Error{Proc: p.Name, Input: "AuthMode", Msg: "must be WEB or APP"}
	}
	if err != nil {
		return nil, err
	}
	if err := a.adopt(ctx, tok); err != nil {
		return nil, err
	}
	return tokenRows(p, tok), nil
}

func (a *oauthAuth) exchangeWeb(ctx context.Context, p *storedproc.Procedure, in map[string]string) (*oauth.Token, error) {
	code := in["Verifier"]
	if code == "" {
		return nil, &storedproc.Error{Proc: p.Name, Input: "Verifier", Msg: "is required with AuthMode=WEB (the code from the callback URL)"}
	}
	verifier, callback, state := in["PKCEVerifier"], in["CallbackUrl"], in["State"]
	if verifier == "" {
		if state == "" {
			return nil, &storedproc.Error{Proc: p.Name, Input: "State", Msg: "is required to find the pending authorization (or pass PKCEVerifier)"}
		}
		var pend *oauth.Pending
		err := a.pending.Update(ctx, func(st *oauth.Settings) (bool, error) {
			pend = st.Pending[state]
			return false, nil
		})
		if err != nil {
			return nil, err
		}
		if pend == nil {
			return nil, &storedproc.Error{Proc: p.Name, Input: "State", Msg: fmt.Sprintf("names no pending authorization in %s: it is unknown, already used, or older than %v; start again with GetOAuthAuthorizationURL", a.pending.Location(), oauth.PendingTTL)}
		}
		verifier = pend.Verifier
		callback = orDefault(callback, pend.CallbackURL)
	}
	callback = orDefault(callback, orDefault(a.cfg.CallbackURL, DefaultCallbackURL))
	tc, err := a.tokenClient(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := tc.Exchange(ctx, code, verifier, callback)
	if err != nil {
		return nil, err
	}
	if state != "" {
		a.pending.Update(ctx, func(st *oauth.Settings) (bool, error) {
			delete(st.Pending, state)
			return true, nil
		})
	}
	return tok, nil
}

func (a *oauthAuth) procRefresh(ctx context.Context, p *storedproc.Procedure, in map[string]string) (driver.Rows, error) {
	tc, err := a.tokenClient(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := tc.Refresh(ctx, in["OAuthRefreshToken"])
	if err != nil {
		return nil, err
	}
	if err := a.adopt(ctx, tok); err != nil {
		return nil, err
	}
	return tokenRows(p, tok), nil
}

// adopt persists tokens a procedure obtained and makes later connections use them,
// unless InitiateOAuth is OFF (then the caller puts them in the connection string).
func (a *oauthAuth) adopt(ctx context.Context, tok *oauth.Token) error {
	if a.cfg.InitiateOAuth == InitiateOff {
		return nil
	}
	if err := a.src.Save(ctx, tok); err != nil {
		return err
	}
	a.ws.Set(tok, tok.Expiry)
	a.mu.Lock()
	a.user = "" // a new login may be another person
	a.mu.Unlock()
	a.cred.Invalidate(nil)
	return nil
}

func tokenRows(p *storedproc.Procedure, t *oauth.Token) driver.Rows {
	var refresh driver.Value
	if t.RefreshToken != "" {
		refresh = t.RefreshToken
	}
	return storedproc.NewRows(p.Columns, []driver.Value{t.AccessToken, refresh, t.ExpiresIn(time.Now())})
}
