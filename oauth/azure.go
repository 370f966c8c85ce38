package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// EntraSource is the token source of AuthScheme=AzureAD: a Microsoft Entra ID
// token for Resource with the client-credentials grant of an app registration
// (POST <Authority>/<Tenant>/oauth2/v2.0/token, scope <Resource>/.default).
type EntraSource struct {
	HTTP         *http.Client
	Authority    string // e.g. https://login.microsoftonline.com
	Tenant       string
	ClientID     string
	ClientSecret string
	Resource     string
	Retry        Retry
}

// String hides the secret.
func (s EntraSource) String() string {
	return fmt.Sprintf("oauth.EntraSource{tenant: %s, client_id: %s}", s.Tenant, s.ClientID)
}

// Format hides the secret for every fmt verb.
func (s EntraSource) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// Token gets a token (oauth2.TokenSource).
func (s *EntraSource) Token() (*oauth2.Token, error) { return s.TokenContext(context.Background()) }

// TokenContext gets a token.
func (s *EntraSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	cc := &clientcredentials.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		TokenURL:  strings.TrimRight(s.Authority, "/") + "/" + url.PathEscape(s.Tenant) + "/oauth2/v2.0/token",
		Scopes:    []string{s.Resource + "/.default"},
		AuthStyle: oauth2.AuthStyleInParams}
	tc := &TokenClient{Retry: s.Retry}
	return tc.grant(ctx, "entra client_credentials", func(ctx context.Context) (*oauth2.Token, error) {
		return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpx.Client(s.HTTP)))
	})
}

// ManagedIdentitySource is the token source of AuthScheme=AzureMSI: a managed
// identity's token for Resource from the instance metadata endpoint
// (GET <Endpoint>?api-version=2018-02-01&resource=..., header Metadata: true).
// ClientID selects a user-assigned identity. IMDS is not an OAuth endpoint, so this
// is the one token request not made through x/oauth2.
type ManagedIdentitySource struct {
	HTTP     *http.Client
	Endpoint string
	ClientID string
	Resource string
	Retry    Retry
}

// Token gets a token (oauth2.TokenSource).
func (s *ManagedIdentitySource) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext gets a token.
func (s *ManagedIdentitySource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	q := url.Values{"api-version": {"2018-02-01"}, "resource": {s.Resource}}
	if s.ClientID != "" {
		q.Set("client_id", s.ClientID)
	}
	var tok *oauth2.Token
	err := s.Retry.Do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"?"+q.Encode(), nil)
		if err != nil {
			return &TokenError{Op: "managed identity", Err: err}
		}
		req.Header.Set("Metadata", "true")
		tok, err = s.do(req)
		return err
	}, nil)
	return tok, err
}

func (s *ManagedIdentitySource) do(req *http.Request) (*oauth2.Token, error) {
	const op = "managed identity"
	resp, err := httpx.Client(s.HTTP).Do(req)
	if err != nil {
		return nil, &TokenError{Op: op, Err: httpx.RedactURLError(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"` // a string in IMDS answers
		ExpiresOn   json.RawMessage `json:"expires_on"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return nil, &TokenError{Op: op, StatusCode: resp.StatusCode, Code: tr.Error, Description: firstLine(tr.Description), wait: parseRetryAfter(resp.Header)}
	}
	t := &oauth2.Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType}
	if n := jsonInt(tr.ExpiresOn); n > 0 {
		t.Expiry = time.Unix(n, 0)
	} else {
		t.Expiry = ExpiryIn(tr.ExpiresIn, time.Now())
	}
	return withExpiry(t), nil
}

func jsonInt(raw json.RawMessage) int64 {
	s := strings.Trim(string(raw), `"`)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
