package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Tokens are *oauth2.Token everywhere in this package. An expiry of zero means the
// token never expires (as in x/oauth2).

// ExpiresIn returns the seconds left on t, -1 when it never expires.
func ExpiresIn(t *oauth2.Token, now time.Time) int64 {
	if t.Expiry.IsZero() {
		return -1
	}
	return int64(max(0, t.Expiry.Sub(now)/time.Second))
}

// ValidFor reports whether t can be used for at least skew more.
func ValidFor(t *oauth2.Token, now time.Time, skew time.Duration) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || now.Add(skew).Before(t.Expiry))
}

// TokenClient speaks OAuth 2.0 to a workspace's OIDC server through x/oauth2:
// client credentials, the authorization code with PKCE, refresh, and RFC 8693
// token exchange. The client authenticates with HTTP Basic when it has a secret,
// and as a public client (client_id in the form) otherwise.
type TokenClient struct {
	HTTP         *http.Client
	Discovery    *Discovery // where the authorization and token endpoints come from
	ClientID     string
	ClientSecret string // empty for a public client
	Retry        Retry
	// OnRetry, if set, is told of each retried request.
	OnRetry func(op string, attempt int, wait time.Duration, err error)
}

// String names the client and hides its secret.
func (c TokenClient) String() string {
	return fmt.Sprintf("oauth.TokenClient{client_id: %s, secret: %v}", c.ClientID, c.ClientSecret != "")
}

// Format hides the secret for every fmt verb.
func (c TokenClient) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

func (c *TokenClient) authStyle() oauth2.AuthStyle {
	if c.ClientSecret != "" {
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleInParams
}

// config is the x/oauth2 configuration for one request.
func (c *TokenClient) config(ctx context.Context, redirectURL, scope string) (*oauth2.Config, error) {
	ep, err := c.Discovery.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	ep.AuthStyle = c.authStyle()
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Endpoint: ep,
		RedirectURL: redirectURL, Scopes: strings.Fields(scope)}, nil
}

func (c *TokenClient) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, httpx.Client(c.HTTP))
}

// ClientCredentials gets a token with the client-credentials grant.
func (c *TokenClient) ClientCredentials(ctx context.Context, scope string) (*oauth2.Token, error) {
	return c.grant(ctx, "client_credentials", func(ctx context.Context) (*oauth2.Token, error) {
		ep, err := c.Discovery.Endpoints(ctx)
		if err != nil {
			return nil, err
		}
		cc := &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: ep.TokenURL,
			Scopes: strings.Fields(scope), AuthStyle: c.authStyle()}
		return cc.Token(c.httpContext(ctx))
	})
}

// Refresh redeems a refresh token. The answer may carry a new (rotated) refresh
// token; when it does not, the old one stays valid and is kept.
func (c *TokenClient) Refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	return c.grant(ctx, "refresh_token", func(ctx context.Context) (*oauth2.Token, error) {
		conf, err := c.config(ctx, "", "")
		if err != nil {
			return nil, err
		}
		return conf.TokenSource(c.httpContext(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	})
}

// Exchange redeems an authorization code with its PKCE verifier.
func (c *TokenClient) Exchange(ctx context.Context, code, verifier, redirectURI string) (*oauth2.Token, error) {
	return c.grant(ctx, "authorization_code", func(ctx context.Context) (*oauth2.Token, error) {
		conf, err := c.config(ctx, redirectURI, "")
		if err != nil {
			return nil, err
		}
		return conf.Exchange(c.httpContext(ctx), code, oauth2.VerifierOption(verifier))
	})
}

// TokenExchange exchanges a federated JWT for a workspace token (RFC 8693), as the
// Databricks SDK does: the client-credentials request with the grant type and the
// subject token as endpoint parameters. client_id is sent whenever one is set.
func (c *TokenClient) TokenExchange(ctx context.Context, subjectToken, scope string) (*oauth2.Token, error) {
	return c.grant(ctx, "token_exchange", func(ctx context.Context) (*oauth2.Token, error) {
		ep, err := c.Discovery.Endpoints(ctx)
		if err != nil {
			return nil, err
		}
		cc := &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: ep.TokenURL,
			Scopes: strings.Fields(scope), AuthStyle: c.authStyle(),
			EndpointParams: url.Values{
				"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token":      {subjectToken},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
			}}
		return cc.Token(c.httpContext(ctx))
	})
}

// AuthCodeURL returns the authorization URL of a PKCE S256 login.
func (c *TokenClient) AuthCodeURL(ctx context.Context, redirectURI, scope, state, verifier string) (string, error) {
	conf, err := c.config(ctx, redirectURI, scope)
	if err != nil {
		return "", err
	}
	return conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

func (c *TokenClient) grant(ctx context.Context, op string, fn func(context.Context) (*oauth2.Token, error)) (*oauth2.Token, error) {
	var tok *oauth2.Token
	retryable := IsTemporary
	if op == "refresh_token" || op == "authorization_code" {
		// Single-use grants: only when the request cannot have been processed, and a
		// retry can help (a refused connection is a wrong port, not a moment).
		retryable = func(err error) bool { return NotProcessed(err) && IsTemporary(err) }
		// Once sent, a single-use grant must be seen through: a caller giving up (or a
		// connector closing) mid-request would lose the rotated refresh token the
		// identity provider already issued, and the next use of the old one would
		// revoke the whole login. It is bounded by its own timeout instead.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), singleUseTimeout)
		defer cancel()
	}
	err := c.Retry.DoIf(ctx, func(ctx context.Context) error {
		t, err := fn(ctx)
		if err != nil {
			return tokenError(op, err)
		}
		tok = withExpiry(t)
		return nil
	}, retryable, func(attempt int, wait time.Duration, err error) {
		if c.OnRetry != nil {
			c.OnRetry(op, attempt, wait, err)
		}
	})
	return tok, err
}

// tokenError turns what x/oauth2 returned into a TokenError that never quotes the
// endpoint's body (it may echo what was sent).
func tokenError(op string, err error) error {
	var te *TokenError
	if errors.As(err, &te) {
		return err // discovery
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		e := &TokenError{Op: op, Code: re.ErrorCode, Description: firstLine(re.ErrorDescription), Err: re}
		if re.Response != nil {
			e.StatusCode = re.Response.StatusCode
			e.wait = parseRetryAfter(re.Response.Header)
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &TokenError{Op: op, Err: httpx.RedactURLError(ue)}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &TokenError{Op: op, Err: err}
	}
	// x/oauth2's own complaints (no access_token, unparsable answer) quote nothing secret,
	// but the answer is unusable: not a transport failure, so not retried.
	return &TokenError{Op: op, Code: "invalid_response", Description: "the token endpoint's answer is unusable"}
}

// withExpiry fills in an expiry the answer did not give: the JWT's exp claim,
// failing that DefaultLifetime.
func withExpiry(t *oauth2.Token) *oauth2.Token {
	if t.Expiry.IsZero() {
		if t.Expiry = JWTExpiry(t.AccessToken); t.Expiry.IsZero() {
			t.Expiry = time.Now().Add(DefaultLifetime)
		}
	}
	return t
}

// singleUseTimeout bounds a refresh-token or authorization-code request, which is
// not cancelled by its caller once started.
const singleUseTimeout = 60 * time.Second

// DefaultLifetime is assumed for a token or credential whose answer gives no expiry:
// short, as the official Databricks helpers cache such values, never "forever".
const DefaultLifetime = 15 * time.Minute

// ExpiryIn decodes an expires_in value (seconds, as a JSON number or string) into an
// absolute time; zero when absent or not positive.
func ExpiryIn(raw json.RawMessage, now time.Time) time.Time {
	if n := jsonInt(raw); n > 0 {
		return now.Add(time.Duration(n) * time.Second)
	}
	return time.Time{}
}

// JWTExpiry returns the exp claim of a JWT, without checking its signature, or the
// zero time when tok is not a JWT with exp.
func JWTExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil {
		return time.Time{}
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}
