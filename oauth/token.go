package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Token is a workspace OAuth token.
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // zero: never expires
}

// String redacts the token.
func (t *Token) String() string {
	if t == nil {
		return "<nil>"
	}
	return fmt.Sprintf("oauth.Token{expiry: %s, refresh: %v}", t.Expiry.Format(time.RFC3339), t.RefreshToken != "")
}

// GoString redacts the token.
func (t *Token) GoString() string { return t.String() }

// Format redacts the token for every fmt verb.
func (t *Token) Format(f fmt.State, _ rune) { io.WriteString(f, t.String()) }

// ExpiresIn returns the seconds left, -1 when the token never expires.
func (t *Token) ExpiresIn(now time.Time) int64 {
	if t.Expiry.IsZero() {
		return -1
	}
	return int64(max(0, t.Expiry.Sub(now)/time.Second))
}

// Valid reports whether the token can be used for at least skew more.
func (t *Token) Valid(now time.Time, skew time.Duration) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || now.Add(skew).Before(t.Expiry))
}

// TokenClient calls a token endpoint.
type TokenClient struct {
	HTTP         *http.Client
	TokenURL     string
	ClientID     string
	ClientSecret string // empty for a public client
	Retry        Retry
	// OnRetry, if set, is told of each retried request.
	OnRetry func(op string, attempt int, wait time.Duration, err error)
}

// ClientCredentials gets a token with the client-credentials grant, the client
// authenticated with HTTP Basic.
func (c *TokenClient) ClientCredentials(ctx context.Context, scope string) (*Token, error) {
	return c.grant(ctx, "client_credentials", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
}

// Refresh redeems a refresh token. The answer may carry a new (rotated) refresh
// token; when it does not, the old one stays valid and is kept.
func (c *TokenClient) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	t, err := c.grant(ctx, "refresh_token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err == nil && t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, err
}

// Exchange redeems an authorization code with its PKCE verifier.
func (c *TokenClient) Exchange(ctx context.Context, code, verifier, redirectURI string) (*Token, error) {
	return c.grant(ctx, "authorization_code", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"code_verifier": {verifier}, "redirect_uri": {redirectURI}})
}

// TokenExchange exchanges a federated JWT (RFC 8693) for a workspace token.
func (c *TokenClient) TokenExchange(ctx context.Context, subjectToken, scope string) (*Token, error) {
	return c.grant(ctx, "token_exchange", url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
		"scope":              {scope},
	})
}

func (c *TokenClient) grant(ctx context.Context, op string, form url.Values) (*Token, error) {
	var tok *Token
	err := c.Retry.Do(ctx, func(ctx context.Context) error {
		var err error
		tok, err = c.post(ctx, op, form)
		return err
	}, func(attempt int, wait time.Duration, err error) {
		if c.OnRetry != nil {
			c.OnRetry(op, attempt, wait, err)
		}
	})
	return tok, err
}

func (c *TokenClient) post(ctx context.Context, op string, form url.Values) (*Token, error) {
	if c.ClientSecret == "" && c.ClientID != "" {
		form.Set("client_id", c.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &TokenError{Op: op, Err: fmt.Errorf("bad token URL")}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.ClientSecret != "" {
		// RFC 6749 §2.3.1: form-encode id and secret before Basic encoding.
		cred := url.QueryEscape(c.ClientID) + ":" + url.QueryEscape(c.ClientSecret)
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	}
	resp, err := httpClient(c.HTTP).Do(req)
	if err != nil {
		return nil, &TokenError{Op: op, Err: redactURLError(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &TokenError{Op: op, Err: err}
	}
	var tr struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		TokenType    string          `json:"token_type"`
		Scope        string          `json:"scope"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		Error        string          `json:"error"`
		Description  string          `json:"error_description"`
	}
	jerr := json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.Error != "" {
		return nil, &TokenError{Op: op, StatusCode: resp.StatusCode, Code: tr.Error, Description: tr.Description, wait: parseRetryAfter(resp.Header)}
	}
	if jerr != nil || tr.AccessToken == "" {
		return nil, &TokenError{Op: op, StatusCode: resp.StatusCode, Code: "invalid_response", Description: "the token endpoint answered without an access_token"}
	}
	t := &Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: tr.TokenType, Scope: tr.Scope}
	var secs json.Number
	if len(tr.ExpiresIn) > 0 && json.Unmarshal(tr.ExpiresIn, &secs) == nil {
		if n, err := secs.Int64(); err == nil && n > 0 {
			t.Expiry = time.Now().Add(time.Duration(n) * time.Second)
		}
	} else if len(tr.ExpiresIn) > 0 {
		var s string
		if json.Unmarshal(tr.ExpiresIn, &s) == nil {
			var n int64
			if _, err := fmt.Sscan(s, &n); err == nil && n > 0 {
				t.Expiry = time.Now().Add(time.Duration(n) * time.Second)
			}
		}
	}
	if t.Expiry.IsZero() {
		t.Expiry = JWTExpiry(t.AccessToken)
	}
	return t, nil
}

func httpClient(c *http.Client) *http.Client {
	if c == nil {
		return http.DefaultClient
	}
	return c
}

// redactURLError drops the URL (which may carry a query) from a transport error,
// keeping the cause.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s %s: %w", ue.Op, redactURL(ue.URL), ue.Err)
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
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
