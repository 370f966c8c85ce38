package lakebase

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/pipeline"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
)

// AuthorizationRequest holds the optional inputs of Connector.AuthorizationURL.
type AuthorizationRequest struct {
	CallbackURL string // redirect URI; default CallbackURL of the connection string
	Scope       string // default the connection's Scope
	State       string // generated when empty
}

// Authorization is a login waiting for the person: send the browser to URL; the
// callback brings back State and a code for ExchangeCode. Its String and fmt forms
// hide PKCEVerifier.
type Authorization struct {
	URL          string
	State        string
	PKCEVerifier string // secret; kept by the connector under State for PendingLoginTTL
}

// String hides the PKCE verifier.
func (a Authorization) String() string {
	return "lakebase.Authorization{URL: " + a.URL + ", State: " + a.State + "}"
}

// Format hides the PKCE verifier for every fmt verb.
func (a Authorization) Format(f fmt.State, _ rune) { io.WriteString(f, a.String()) }

// Code reads the authorization code from what a person pasted after logging in
// elsewhere: the code itself, or the whole URL the browser ended on (whose state
// must be this authorization's).
func (a Authorization) Code(pasted string) (string, error) {
	return oauth.CodeFromPaste(pasted, a.State)
}

// CodeExchange holds the inputs of Connector.ExchangeCode.
type CodeExchange struct {
	Code  string // the code parameter of the callback (required)
	State string // the state of the callback: finds the pending authorization
	// CallbackURL must equal the redirect URI of the authorization; default: the
	// pending authorization's, else the connection's.
	CallbackURL string
	// PKCEVerifier overrides the lookup by State (for callers that kept it themselves).
	PKCEVerifier string
}

// String hides the code and the verifier.
func (e CodeExchange) String() string {
	return "lakebase.CodeExchange{State: " + e.State + ", CallbackURL: " + e.CallbackURL + "}"
}

// Format hides the code and the verifier for every fmt verb.
func (e CodeExchange) Format(f fmt.State, _ rune) { io.WriteString(f, e.String()) }

// PendingLoginTTL is how long a pending authorization's PKCE verifier is kept.
const PendingLoginTTL = settings.PendingTTL

// personLogin holds the login steps of a person (AuthScheme OAuthPKCE or OAuthClient).
type personLogin struct {
	cfg         *Config
	log         *slog.Logger
	client      *oauth.TokenClient
	pending     settings.Store // where pending PKCE verifiers live
	stored      *oauth.Source
	pipeline    *pipeline.Pipeline
	openBrowser func(string) error
	stderr      io.Writer
	scope       string // of a person's login
}

func (c *Connector) person() (*personLogin, error) {
	if c.steps == nil {
		return nil, fmt.Errorf("%w (AuthScheme=%s logs in without one)", ErrNoPersonLogin, c.cfg.AuthScheme)
	}
	return c.steps, nil
}

// AuthorizationURL starts a person's login (the web and headless flows): it returns
// the workspace's authorization URL with PKCE S256 and keeps the verifier under the
// state for PendingLoginTTL — in OAuthSettingsLocation when one is set (so
// ExchangeCode may run in another connection or process), else in process memory.
// EXEC GetOAuthAuthorizationURL adapts it.
func (c *Connector) AuthorizationURL(ctx context.Context, req AuthorizationRequest) (Authorization, error) {
	p, err := c.person()
	if err != nil {
		return Authorization{}, err
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	callback := cmp.Or(req.CallbackURL, cmp.Or(p.cfg.CallbackURL, DefaultCallbackURL))
	scope := cmp.Or(req.Scope, p.scope)
	state := cmp.Or(req.State, oauth.NewState())
	verifier := oauth.NewVerifier()
	u, err := p.client.AuthCodeURL(ctx, callback, scope, state, verifier)
	if err != nil {
		return Authorization{}, err
	}
	err = p.pending.Update(ctx, func(st *settings.Settings) (bool, error) {
		if st.Pending == nil {
			st.Pending = map[string]*settings.Pending{}
		}
		st.Pending[state] = &settings.Pending{Verifier: verifier, CallbackURL: callback, Scope: scope, Key: p.stored.Key().String(), Created: time.Now()}
		return true, nil
	})
	if err != nil {
		return Authorization{}, err
	}
	p.log.Info("lakebase: authorization URL made", "workspace", p.cfg.DatabricksInstance, "callback", callback)
	return Authorization{URL: u, State: state, PKCEVerifier: verifier}, nil
}

// ExchangeCode finishes a person's login: it redeems the code of the callback with
// the PKCE verifier of the pending authorization named by State (or PKCEVerifier).
// With InitiateOAuth REFRESH or GETANDREFRESH the tokens are stored and used by the
// connector's later connections; with OFF they are only returned (put them in the
// connection string). EXEC GetOAuthAccessToken adapts it.
func (c *Connector) ExchangeCode(ctx context.Context, ex CodeExchange) (*oauth2.Token, error) {
	p, err := c.person()
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	if ex.Code == "" {
		return nil, &InputError{Input: "Code", Msg: "is required (the code parameter of the callback URL)"}
	}
	verifier, callback := ex.PKCEVerifier, ex.CallbackURL
	if verifier == "" {
		if ex.State == "" {
			return nil, &InputError{Input: "State", Msg: "is required to find the pending authorization (or pass PKCEVerifier)"}
		}
		var pend *settings.Pending
		err := p.pending.Update(ctx, func(st *settings.Settings) (bool, error) {
			pend = st.Pending[ex.State]
			return false, nil
		})
		if err != nil {
			return nil, err
		}
		if pend == nil {
			return nil, &InputError{Input: "State", Msg: fmt.Sprintf("names no pending authorization in %s: it is unknown, already used, or older than %v; start again with AuthorizationURL (EXEC GetOAuthAuthorizationURL)", p.pending.Location(), settings.PendingTTL)}
		}
		verifier = pend.Verifier
		callback = cmp.Or(callback, pend.CallbackURL)
	}
	callback = cmp.Or(callback, cmp.Or(p.cfg.CallbackURL, DefaultCallbackURL))
	tok, err := p.client.Exchange(ctx, ex.Code, verifier, callback)
	if err != nil {
		return nil, err
	}
	if ex.State != "" {
		p.pending.Update(ctx, func(st *settings.Settings) (bool, error) {
			delete(st.Pending, ex.State)
			return true, nil
		})
	}
	return tok, p.adopt(ctx, tok)
}

// RefreshToken redeems a refresh token for a new access token (and, where the
// workspace rotates them, a new refresh token: keep the returned one). With
// InitiateOAuth REFRESH or GETANDREFRESH the tokens are stored and used by later
// connections. EXEC RefreshOAuthAccessToken adapts it.
func (c *Connector) RefreshToken(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	p, err := c.person()
	if err != nil {
		return nil, err
	}
	if refreshToken == "" {
		return nil, &InputError{Input: "OAuthRefreshToken", Msg: "is required"}
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	tok, err := p.client.Refresh(ctx, refreshToken)
	if err != nil {
		return nil, err
	}
	return tok, p.adopt(ctx, tok)
}

// BrowserLogin runs the desktop login of a person on this machine: it opens the
// authorization URL in the browser (and prints it), serves the callback on the
// loopback address of CallbackURL, and exchanges the code; bounded by Timeout. The
// tokens are stored as with ExchangeCode. EXEC GetOAuthAccessToken AuthMode='APP'
// adapts it.
func (c *Connector) BrowserLogin(ctx context.Context) (*oauth2.Token, error) {
	p, err := c.person()
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	tok, err := p.browserLogin(ctx)
	if err != nil {
		return nil, err
	}
	return tok, p.adopt(ctx, tok)
}

// browserLogin is the desktop flow itself (also the Login of the token source under
// GETANDREFRESH).
func (p *personLogin) browserLogin(ctx context.Context) (*oauth2.Token, error) {
	d := &oauth.DesktopLogin{
		Client:      p.client,
		CallbackURL: p.cfg.CallbackURL,
		Scope:       p.scope,
		OpenBrowser: p.openBrowser,
		Out:         p.stderr,
	}
	p.log.Info("lakebase: starting the browser login", slog.String("workspace", p.cfg.DatabricksInstance))
	return d.Run(ctx)
}

// adopt persists tokens a login step obtained and makes later connections use them,
// unless InitiateOAuth is OFF (then the caller puts them in the connection string).
func (p *personLogin) adopt(ctx context.Context, tok *oauth2.Token) error {
	if p.cfg.InitiateOAuth == InitiateOff {
		return nil
	}
	if p.cfg.AuthScheme == AuthOAuthClient && p.cfg.User == "" {
		p.log.Warn("lakebase: a person logged in under AuthScheme=OAuthClient; set User to the person's user name, or the driver logs in as the client id")
	}
	if err := p.stored.Save(ctx, tok); err != nil {
		return err
	}
	p.pipeline.Adopt(tok)
	return nil
}
