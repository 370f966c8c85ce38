package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EntraClientCredentials gets a Microsoft Entra ID token for resource with the
// client-credentials grant of an app registration:
// POST <authority>/<tenant>/oauth2/v2.0/token, scope <resource>/.default.
func EntraClientCredentials(ctx context.Context, hc *http.Client, authority, tenant, clientID, secret, resource string, retry Retry) (*Token, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {resource + "/.default"}}
	u := strings.TrimRight(authority, "/") + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	var tok *Token
	err := retry.Do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
		if err != nil {
			return &TokenError{Op: "entra client_credentials", Err: err}
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		tok, err = doEntra(hc, req, "entra client_credentials")
		return err
	}, nil)
	return tok, err
}

// ManagedIdentityToken gets a managed identity's token for resource from the instance
// metadata endpoint (GET <endpoint>?api-version=2018-02-01&resource=..., header
// Metadata: true). clientID selects a user-assigned identity.
func ManagedIdentityToken(ctx context.Context, hc *http.Client, endpoint, clientID, resource string, retry Retry) (*Token, error) {
	q := url.Values{"api-version": {"2018-02-01"}, "resource": {resource}}
	if clientID != "" {
		q.Set("client_id", clientID)
	}
	var tok *Token
	err := retry.Do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+q.Encode(), nil)
		if err != nil {
			return &TokenError{Op: "managed identity", Err: err}
		}
		req.Header.Set("Metadata", "true")
		tok, err = doEntra(hc, req, "managed identity")
		return err
	}, nil)
	return tok, err
}

func doEntra(hc *http.Client, req *http.Request, op string) (*Token, error) {
	resp, err := httpClient(hc).Do(req)
	if err != nil {
		return nil, &TokenError{Op: op, Err: redactURLError(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"` // a number (Entra) or a string (IMDS)
		ExpiresOn   json.RawMessage `json:"expires_on"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return nil, &TokenError{Op: op, StatusCode: resp.StatusCode, Code: tr.Error, Description: firstLine(tr.Description), wait: parseRetryAfter(resp.Header)}
	}
	t := &Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType}
	if n := jsonInt(tr.ExpiresOn); n > 0 {
		t.Expiry = time.Unix(n, 0)
	} else if n := jsonInt(tr.ExpiresIn); n > 0 {
		t.Expiry = time.Now().Add(time.Duration(n) * time.Second)
	} else {
		t.Expiry = JWTExpiry(t.AccessToken)
	}
	return t, nil
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
