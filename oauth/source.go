package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Modes of a Source, as CData's InitiateOAuth.
const (
	ModeOff           = "OFF"
	ModeRefresh       = "REFRESH"
	ModeGetAndRefresh = "GETANDREFRESH"
)

// Schemes of a Source.
const (
	SchemeClient = "OAuthClient"
	SchemePKCE   = "OAuthPKCE"
)

// Source gets the workspace token according to its Mode:
//
//   - ModeOff: AccessToken as given; never refreshed, the store never touched.
//   - ModeRefresh: the stored token (seeded from AccessToken/RefreshToken or a
//     one-time exchange of Verifier), refreshed when it expires and written back.
//   - ModeGetAndRefresh: as ModeRefresh, and when no usable token exists, get one:
//     client credentials for SchemeClient, Verifier or Login for SchemePKCE.
//
// Every read-refresh-write runs under the store's lock, so concurrent goroutines and
// processes never redeem the same refresh token twice: the second one finds and
// adopts the token the first one stored.
type Source struct {
	Scheme       string
	Mode         string
	Workspace    string
	ClientID     string
	ClientSecret string
	Scope        string

	AccessToken  string
	RefreshToken string
	// Expiry of AccessToken: zero when unknown (then a JWT's exp is read, and
	// failing that the token is refreshed at once), NeverExpires for -1.
	Expiry time.Time

	Verifier    string // an authorization code to exchange once (headless flow)
	CallbackURL string // redirect URI for code exchanges

	Store     Store
	Discovery *Discovery
	HTTP      *http.Client
	Retry     Retry
	OnRetry   func(op string, attempt int, wait time.Duration, err error)
	// Login runs an interactive login (the desktop flow) for SchemePKCE with
	// ModeGetAndRefresh when no usable token exists.
	Login func(ctx context.Context) (*Token, error)
	// OnToken, if set, is told where each token came from: "given", "stored",
	// "refreshed", "client_credentials", "verifier", "login".
	OnToken func(origin string, t *Token)
}

// NeverExpires marks a token given with OAuthExpiresIn=-1.
var NeverExpires = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// tokenSkew: a token within this of its expiry is refreshed before use.
func tokenSkew(t *Token) time.Duration {
	if t.Expiry.IsZero() {
		return 0
	}
	return min(time.Minute, max(time.Until(t.Expiry)/10, time.Second))
}

// Key returns the store key of this source's tokens.
func (s *Source) Key() string { return Key(s.Workspace, s.ClientID, s.Scheme) }

func (s *Source) tokenClient(ctx context.Context) (*TokenClient, error) {
	ep, err := s.Discovery.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	return &TokenClient{HTTP: s.HTTP, TokenURL: ep.TokenURL, ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		Retry: s.Retry, OnRetry: s.OnRetry}, nil
}

func (s *Source) told(origin string, t *Token) {
	if s.OnToken != nil {
		s.OnToken(origin, t)
	}
}

// givenToken is the token of AccessToken with its expiry worked out.
func (s *Source) givenToken() *Token {
	t := &Token{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: s.Expiry}
	if t.Expiry.IsZero() && t.AccessToken != "" {
		t.Expiry = JWTExpiry(t.AccessToken)
	}
	if t.Expiry.IsZero() {
		t.Expiry = time.Unix(1, 0) // unknown: treat as expired, refresh at once
	}
	if t.Expiry.Equal(NeverExpires) {
		t.Expiry = time.Time{}
	}
	return t
}

func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Token returns a usable workspace token.
func (s *Source) Token(ctx context.Context) (*Token, error) {
	if s.Mode == ModeOff {
		if s.AccessToken == "" {
			return nil, fmt.Errorf("%w: InitiateOAuth=OFF and no OAuthAccessToken is set; get one with EXEC GetOAuthAccessToken (or EXEC RefreshOAuthAccessToken), or set InitiateOAuth=GETANDREFRESH to let the driver get and refresh tokens", ErrNoToken)
		}
		t := s.givenToken()
		if t.Expiry.Equal(time.Unix(1, 0)) {
			t.Expiry = time.Time{} // OFF never refreshes; an unknown expiry is used as is
		}
		if !t.Valid(time.Now(), 0) {
			return nil, fmt.Errorf("%w: OAuthAccessToken expired at %s and InitiateOAuth=OFF never refreshes it", ErrNoToken, t.Expiry.Format(time.RFC3339))
		}
		s.told("given", t)
		return t, nil
	}
	var out *Token
	err := s.Store.Update(ctx, func(st *Settings) (bool, error) {
		t, err := s.tokenLocked(ctx, st)
		out = t
		return true, err
	})
	return out, err
}

// tokenLocked runs with the store locked.
func (s *Source) tokenLocked(ctx context.Context, st *Settings) (*Token, error) {
	key := s.Key()
	e := st.Tokens[key]
	if s.AccessToken != "" || s.RefreshToken != "" {
		seed := fingerprint("given", s.AccessToken, s.RefreshToken)
		if e == nil || e.Seed != seed {
			e = &StoredToken{Token: *s.givenToken(), Seed: seed, Updated: time.Now()}
			st.Tokens[key] = e
		}
	}
	if e != nil && e.Valid(time.Now(), tokenSkew(&e.Token)) {
		t := e.Token
		s.told("stored", &t)
		return &t, nil
	}
	if e != nil && e.RefreshToken != "" {
		tc, err := s.tokenClient(ctx)
		if err != nil {
			return nil, err
		}
		nt, err := tc.Refresh(ctx, e.RefreshToken)
		if err == nil {
			st.Tokens[key] = &StoredToken{Token: *nt, Seed: e.Seed, Updated: time.Now()}
			s.told("refreshed", nt)
			return nt, nil
		}
		if !errors.Is(err, ErrReloginRequired) {
			if e.Valid(time.Now(), 0) {
				t := e.Token // a failed refresh keeps a still-valid token
				return &t, nil
			}
			return nil, err
		}
		// The refresh token is dead: forget it, and get a new login if allowed.
		delete(st.Tokens, key)
		if s.Mode != ModeGetAndRefresh || (s.Scheme == SchemePKCE && s.Verifier == "" && s.Login == nil) {
			return nil, err
		}
	}
	if s.Verifier != "" {
		codeSeed := fingerprint("code", s.Verifier)
		if e == nil || e.Seed != codeSeed {
			nt, err := s.exchangeVerifierLocked(ctx, st)
			if err != nil {
				return nil, err
			}
			st.Tokens[key] = &StoredToken{Token: *nt, Seed: codeSeed, Updated: time.Now()}
			s.told("verifier", nt)
			return nt, nil
		}
	}
	if s.Mode == ModeGetAndRefresh {
		var nt *Token
		var err error
		origin := "client_credentials"
		switch {
		case s.Scheme == SchemeClient:
			var tc *TokenClient
			if tc, err = s.tokenClient(ctx); err == nil {
				nt, err = tc.ClientCredentials(ctx, s.Scope)
			}
		case s.Login != nil:
			origin = "login"
			nt, err = s.Login(ctx)
		default:
			err = fmt.Errorf("%w: no stored login for %s in %s", ErrNoToken, s.Workspace, s.Store.Location())
		}
		if err != nil {
			return nil, err
		}
		st.Tokens[key] = &StoredToken{Token: *nt, Updated: time.Now()}
		s.told(origin, nt)
		return nt, nil
	}
	if e != nil && e.RefreshToken == "" && e.AccessToken != "" {
		return nil, fmt.Errorf("%w: the stored access token expired at %s and there is no refresh token; log in again with EXEC GetOAuthAccessToken", ErrNoToken, e.Expiry.Format(time.RFC3339))
	}
	return nil, fmt.Errorf("%w: no stored login for %s in %s; run EXEC GetOAuthAuthorizationURL and EXEC GetOAuthAccessToken, set OAuthVerifier, or set InitiateOAuth=GETANDREFRESH", ErrNoToken, s.Workspace, s.Store.Location())
}

// exchangeVerifierLocked redeems Verifier with the PKCE verifier of the newest
// pending authorization for this source.
func (s *Source) exchangeVerifierLocked(ctx context.Context, st *Settings) (*Token, error) {
	var state string
	var p *Pending
	for k, c := range st.Pending {
		if c.Key == s.Key() && (p == nil || c.Created.After(p.Created)) {
			state, p = k, c
		}
	}
	if p == nil {
		return nil, fmt.Errorf("%w: OAuthVerifier is set but %s holds no pending authorization (run EXEC GetOAuthAuthorizationURL with this OAuthSettingsLocation first; it is kept %v)", ErrNoToken, s.Store.Location(), PendingTTL)
	}
	tc, err := s.tokenClient(ctx)
	if err != nil {
		return nil, err
	}
	cb := p.CallbackURL
	if cb == "" {
		cb = s.CallbackURL
	}
	nt, err := tc.Exchange(ctx, s.Verifier, p.Verifier, cb)
	if err != nil {
		return nil, err
	}
	delete(st.Pending, state)
	return nt, nil
}

// Save stores a token obtained elsewhere (by a procedure) as this source's token.
func (s *Source) Save(ctx context.Context, t *Token) error {
	return s.Store.Update(ctx, func(st *Settings) (bool, error) {
		st.Tokens[s.Key()] = &StoredToken{Token: *t, Seed: fingerprint("given", s.AccessToken, s.RefreshToken), Updated: time.Now()}
		return true, nil
	})
}

// Forget removes this source's stored token.
func (s *Source) Forget(ctx context.Context) error {
	return s.Store.Update(ctx, func(st *Settings) (bool, error) {
		delete(st.Tokens, s.Key())
		return true, nil
	})
}
