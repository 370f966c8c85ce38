package oauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// NewVerifier returns a PKCE code verifier (x/oauth2's GenerateVerifier: 32 random
// bytes, base64url).
func NewVerifier() string { return oauth2.GenerateVerifier() }

// NewState returns a random state value for an authorization request.
func NewState() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("lakebase: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// S256Challenge returns the S256 code challenge of a verifier. S256 is the only
// method this package uses.
func S256Challenge(verifier string) string { return oauth2.S256ChallengeFromVerifier(verifier) }

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
		return "", errors.New("lakebase: nothing was pasted; paste the code or the URL the browser ended on")
	}
	return code, nil
}
