package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
)

// NewVerifier returns a PKCE code verifier: 64 random bytes, base64url (86 characters,
// within RFC 7636's 43..128).
func NewVerifier() string { return randomString(64) }

// NewState returns a random state value for an authorization request.
func NewState() string { return randomString(24) }

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("oauth: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// S256Challenge returns the S256 code challenge of a verifier. S256 is the only
// method this package uses.
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthCodeURL builds an authorization URL with PKCE S256.
func AuthCodeURL(authorizationURL, clientID, redirectURI, scope, state, verifier string) string {
	u, err := url.Parse(authorizationURL)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", clientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("scope", scope)
	q.Set("state", state)
	q.Set("code_challenge", S256Challenge(verifier))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	return u.String()
}

// CodeFromPaste reads what a person pasted after a login on another machine: the
// code itself, or the whole URL the browser ended on (then its state must be state).
func CodeFromPaste(pasted, state string) (string, error) {
	code := strings.TrimSpace(pasted)
	if u, err := url.Parse(code); err == nil && u.Query().Get("code") != "" {
		if state != "" && u.Query().Get("state") != state {
			return "", ErrStateMismatch
		}
		return u.Query().Get("code"), nil
	}
	if code == "" {
		return "", errors.New("oauth: nothing was pasted; paste the code or the URL the browser ended on")
	}
	return code, nil
}
