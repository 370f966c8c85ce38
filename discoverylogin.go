package lakebase

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"github.com/lakebase-go/lakebase/oauth"
	"golang.org/x/oauth2"
)

// A host-agnostic login logs a person in without knowing the workspace first, as
// the Databricks Go SDK's u2m discovery login does: it starts at LoginHost
// (https://login.databricks.com), where the person picks the workspace; the
// callback's iss names it; the code is redeemed at <iss>/v1/token. The tokens are
// then stored under that workspace, like any OAuthPKCE login.
//
// Who may send the callback is not known (the login URL, with its state, is
// printed and on the browser opener's command line), so iss is trusted only as
// far as oauth.CheckIssuer allows: a workspace host in the login host's cloud, or
// the login host's own origin for a loopback login host. Anything else ends the
// login before the code or the PKCE verifier is sent anywhere. The workspace is
// printed (and given to WithConfirmWorkspace) before the code is redeemed.

// DiscoveryAuthorization is the first step of a host-agnostic login on another
// machine (the headless flow): open URL there, then give the URL the browser ends
// on to FinishDiscoveryLogin with this value. Its fmt forms hide the verifier.
type DiscoveryAuthorization struct {
	URL          string
	State        string
	PKCEVerifier string
	CallbackURL  string
}

// String names the authorization without its verifier.
func (a DiscoveryAuthorization) String() string {
	return "lakebase.DiscoveryAuthorization{URL: " + a.URL + ", State: " + a.State + "}"
}

// Format hides the verifier for every fmt verb.
func (a DiscoveryAuthorization) Format(f fmt.State, _ rune) { fmt.Fprint(f, a.String()) }

// discoveryConfig parses a connection string that names no workspace (it may name
// the database: Endpoint, Instance or Project), with the person's defaults.
func discoveryConfig(dsn string) (*Config, error) {
	c, err := parseDSNNoDefaults(dsn, os.Getenv)
	if err != nil {
		return nil, err
	}
	if c.DatabricksInstance != "" {
		return nil, &ConfigError{Property: "DatabricksInstance", Value: c.DatabricksInstance, Err: errors.New("is set: a host-agnostic login is for when the workspace is not known (log in to it with BrowserLogin or lakebase login)")}
	}
	if c.AuthScheme == "" {
		c.AuthScheme = AuthOAuthPKCE
	}
	if c.AuthScheme != AuthOAuthPKCE {
		return nil, &ConfigError{Property: "AuthScheme", Value: string(c.AuthScheme), Err: errors.New("must be OAuthPKCE for a host-agnostic login (a person logs in)")}
	}
	if c.LoginHost == "" {
		c.LoginHost = oauth.DefaultLoginHost
	}
	if !oauth.SecureURL(c.LoginHost) {
		return nil, &ConfigError{Property: "LoginHost", Value: c.LoginHost, Err: errors.New("must be an https URL (http only for loopback hosts)")}
	}
	if err := oauth.CheckLoginHost(c.LoginHost); err != nil {
		return nil, &ConfigError{Property: "LoginHost", Value: c.LoginHost, Err: err}
	}
	c.personDefaults()
	return c, nil
}

// DiscoveryLogin runs a host-agnostic desktop login: it opens LoginHost's URL in
// the browser (and prints it), serves the callback on the loopback address of
// CallbackURL, learns the workspace from the callback's iss, redeems the code
// there and stores the tokens under that workspace (OAuthSettingsLocation, as
// InitiateOAuth=REFRESH). dsn names no workspace. It returns the configuration to
// connect with: dsn's, with DatabricksInstance set to the workspace learned.
func DiscoveryLogin(ctx context.Context, dsn string, opts ...Option) (*Config, error) {
	cfg, err := discoveryConfig(dsn)
	if err != nil {
		return nil, err
	}
	o := collectOptions(opts)
	d := &oauth.DesktopLogin{Client: &oauth.TokenClient{HTTP: o.httpClient}, CallbackURL: cfg.CallbackURL, Scope: cfg.Scope,
		OpenBrowser: o.openBrowser, Out: o.stderr, ConfirmWorkspace: o.confirmWS}
	host, tok, err := d.RunDiscovery(ctx, cfg.LoginHost, cfg.OAuthClientID)
	if err != nil {
		return nil, err
	}
	return adoptDiscovered(ctx, cfg, host, tok, opts)
}

// NewDiscoveryAuthorization starts a host-agnostic login on another machine: the
// URL to open there (LoginHost's, the workspace's authorize path as
// destination_url) with a fresh state and PKCE verifier.
func NewDiscoveryAuthorization(dsn string) (DiscoveryAuthorization, error) {
	cfg, err := discoveryConfig(dsn)
	if err != nil {
		return DiscoveryAuthorization{}, err
	}
	state, verifier := oauth.NewState(), oauth.NewVerifier()
	return DiscoveryAuthorization{
		URL:   oauth.DiscoveryAuthorizeURL(cfg.LoginHost, cfg.OAuthClientID, cfg.CallbackURL, cfg.Scope, state, verifier),
		State: state, PKCEVerifier: verifier, CallbackURL: cfg.CallbackURL,
	}, nil
}

// FinishDiscoveryLogin ends a host-agnostic login started by
// NewDiscoveryAuthorization: finalURL is the URL the browser ended on (with code,
// state and iss); the code is redeemed at the workspace iss names, when it passes
// the issuer rule (oauth.CheckIssuer with LoginHost; otherwise the error is an
// *IssuerError and nothing is sent), and the tokens are stored under it. It
// returns dsn's configuration with DatabricksInstance set.
func FinishDiscoveryLogin(ctx context.Context, dsn string, a DiscoveryAuthorization, finalURL string, opts ...Option) (*Config, error) {
	cfg, err := discoveryConfig(dsn)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(strings.TrimSpace(finalURL))
	if err != nil || u.RawQuery == "" {
		return nil, &InputError{Input: "the final URL", Msg: "must be the whole URL the browser ended on (it has code, state and iss)"}
	}
	q := u.Query()
	switch {
	case q.Get("error") != "":
		return nil, &oauth.TokenError{Op: "authorize", Code: q.Get("error"), Description: q.Get("error_description")}
	case q.Get("state") != a.State:
		return nil, oauth.ErrStateMismatch
	case q.Get("code") == "" || q.Get("iss") == "":
		return nil, &InputError{Input: "the final URL", Msg: "has no code or no iss: paste the whole URL the browser ended on"}
	}
	ws, err := oauth.CheckIssuer(cfg.LoginHost, q.Get("iss"))
	if err != nil {
		return nil, err
	}
	o := collectOptions(opts)
	fmt.Fprintf(o.stderr, "lakebase: logging in to workspace %s (the workspace picked at %s)\n", ws, cfg.LoginHost)
	if o.confirmWS != nil {
		if err := o.confirmWS(ws); err != nil {
			return nil, fmt.Errorf("lakebase: the login to workspace %s was not completed: %w", ws, err)
		}
	}
	host, tok, err := oauth.ExchangeAtIssuerFor(ctx, o.httpClient, cfg.LoginHost, q.Get("iss"), cfg.OAuthClientID, q.Get("code"), a.PKCEVerifier, a.CallbackURL)
	if err != nil {
		return nil, err
	}
	return adoptDiscovered(ctx, cfg, host, tok, opts)
}

// collectOptions applies opts, with the HTTP client every request of the driver
// uses (its User-Agent, no redirects for secrets).
func collectOptions(opts []Option) options {
	var o options
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	if o.httpClient == nil {
		o.httpClient = &http.Client{}
	}
	o.httpClient = httpx.WithUserAgent(o.httpClient, httpx.UserAgent(Version, AuthOAuthPKCE.userAgentName()))
	if o.stderr == nil {
		o.stderr = os.Stderr
	}
	return o
}

// adoptDiscovered stores the tokens of a host-agnostic login under the workspace
// learned, and returns the configuration naming it.
func adoptDiscovered(ctx context.Context, cfg *Config, host string, tok *oauth2.Token, opts []Option) (*Config, error) {
	cfg.DatabricksInstance = host
	if cfg.InitiateOAuth == "" || cfg.InitiateOAuth == InitiateOff {
		cfg.InitiateOAuth = InitiateRefresh
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c, err := NewConnectorFromConfig(cfg, opts...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	p, err := c.person()
	if err != nil {
		return nil, err
	}
	if err := p.adopt(ctx, tok); err != nil {
		return nil, err
	}
	return c.Config(), nil
}
