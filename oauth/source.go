package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/settings"
)

// Mode is how a Source may get tokens, as CData's InitiateOAuth.
type Mode string

// Modes of a Source.
const (
	ModeOff           Mode = "OFF"
	ModeRefresh       Mode = "REFRESH"
	ModeGetAndRefresh Mode = "GETANDREFRESH"
)

// Scheme is how a Source gets a token when it has none: client credentials, or a
// person's login.
type Scheme string

// Schemes of a Source.
const (
	SchemeClient Scheme = "OAuthClient"
	SchemePKCE   Scheme = "OAuthPKCE"
)

// ContextTokenSource is an oauth2.TokenSource whose work can also be bounded by a
// context. Every token source of this package is one; TokenContext uses it.
type ContextTokenSource interface {
	oauth2.TokenSource
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// TokenContext gets a token from ts, under ctx when ts is a ContextTokenSource.
func TokenContext(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	if cts, ok := ts.(ContextTokenSource); ok {
		return cts.TokenContext(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ts.Token()
}

// Source is the token source of the OAuthClient and OAuthPKCE schemes: it gets the
// workspace token according to its Mode, keeping it in Store:
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
	Scheme    Scheme
	Mode      Mode
	Workspace string
	Scope     string
	// Client speaks to the OIDC server; its ClientID is part of the store key.
	Client *TokenClient

	AccessToken  string
	RefreshToken string
	// Expiry of AccessToken: zero when unknown (then a JWT's exp is read, and
	// failing that the token is refreshed at once), NeverExpires() for -1.
	Expiry time.Time

	Verifier    string // an authorization code to exchange once (headless flow)
	CallbackURL string // redirect URI for code exchanges

	Store settings.Store
	// Login runs an interactive login (the desktop flow) for SchemePKCE with
	// ModeGetAndRefresh when no usable token exists. It runs outside the store's
	// lock; its token is stored under it afterwards.
	Login func(ctx context.Context) (*oauth2.Token, error)
	// OnToken, if set, is told where each token came from: "given", "stored",
	// "refreshed", "client_credentials", "verifier", "login".
	OnToken func(origin string, t *oauth2.Token)
	// OnUnsaved, if set, is told when a new token could not be written to Store (a
	// full disk, a read-only mount): the token is kept in memory and written at the
	// next chance.
	OnUnsaved func(err error)

	// unsaved holds a token entry the store could not keep yet. A rotated refresh
	// token is the only one left (the old one is spent): it is never dropped, used
	// in place of the stored entry it replaced, and written when the store can be.
	unsaved *unsavedToken
}

type unsavedToken struct {
	mu    sync.Mutex
	entry *settings.StoredToken
}

var unsavedInit sync.Mutex

// held returns s's unsaved-token holder, made on first use (Source is a plain
// struct its users fill in).
func (s *Source) held() *unsavedToken {
	unsavedInit.Lock()
	defer unsavedInit.Unlock()
	if s.unsaved == nil {
		s.unsaved = &unsavedToken{}
	}
	return s.unsaved
}

// String names the source and hides its secrets.
func (s Source) String() string {
	return fmt.Sprintf("oauth.Source{scheme: %s, mode: %s, workspace: %s}", s.Scheme, s.Mode, s.Workspace)
}

// Format hides the secrets for every fmt verb.
func (s Source) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// NeverExpires returns the expiry that marks a token given with OAuthExpiresIn=-1.
func NeverExpires() time.Time { return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }

// TokenSkew is how long before its expiry a stored token is no longer handed out:
// a fifth of its lifetime (it was stored when fresh), at least 30 s and at most
// 5 minutes, since Databricks has refused tokens within about 30 s of expiry.
func TokenSkew(e *settings.StoredToken) time.Duration {
	if e.Expiry.IsZero() {
		return 0
	}
	life := e.Expiry.Sub(e.Updated)
	if life <= 0 {
		life = time.Until(e.Expiry)
	}
	return min(5*time.Minute, max(life/5, 30*time.Second))
}

// AzureTokenMargin is how long before its expiry a workspace token of an Azure
// Databricks workspace stops being used, whatever its lifetime: Azure Databricks
// refuses tokens with 30 s or less left, and the Databricks Go SDK refreshes Azure
// tokens 40 s early for that reason.
const AzureTokenMargin = 40 * time.Second

// HostTokenMargin is the least time before its expiry at which a workspace token of
// workspace (a host name or URL) is still used, whatever its lifetime:
// AzureTokenMargin for an Azure Databricks host (under azuredatabricks.net, or the
// sovereign clouds' databricks.azure.us and databricks.azure.cn), else 0 (the
// lifetime's own margins apply).
func HostTokenMargin(workspace string) time.Duration {
	if !strings.Contains(workspace, "://") {
		workspace = "https://" + workspace
	}
	u, err := url.Parse(workspace)
	if err != nil {
		return 0
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	for _, zone := range []string{"azuredatabricks.net", "databricks.azure.us", "databricks.azure.cn"} {
		if h == zone || strings.HasSuffix(h, "."+zone) {
			return AzureTokenMargin
		}
	}
	return 0
}

// Key returns the store key of this source's tokens.
func (s *Source) Key() settings.TokenKey {
	return settings.TokenKey{Workspace: s.Workspace, ClientID: s.Client.ClientID, Scheme: string(s.Scheme), Scope: s.Scope}
}

// clientLogin is the Login of client-credentials tokens: every one of them is the
// same identity (the client), so what was derived from one holds for the next.
const clientLogin = "client-credentials"

// seed fingerprints the login material of the connection string: an authorization
// code to redeem (OAuthVerifier), else tokens given (OAuthAccessToken,
// OAuthRefreshToken); "" when there is none.
func (s *Source) seed() string {
	switch {
	case s.Verifier != "":
		return fingerprint("code", s.Verifier)
	case s.AccessToken != "" || s.RefreshToken != "":
		return fingerprint("given", s.AccessToken, s.RefreshToken)
	}
	return ""
}

// Current returns the Login of the stored token this source would use without
// applying new login material, so callers can tell whether something derived from
// a login (a credential, a user name) is this source's. ok is false when nothing is
// stored, or when the connection string brings login material the store does not
// hold yet (then the next token replaces the stored login).
func (s *Source) Current(st *settings.Settings) (login string, ok bool) {
	e := st.Token(s.Key())
	if e == nil || e.Login == "" || s.Mode == ModeOff {
		return "", false
	}
	if seed := s.seed(); seed != "" && e.Seed != seed {
		return "", false
	}
	return e.Login, true
}

// replace stores t as a new login of this source and drops what was derived from the
// login it replaces.
func (s *Source) replace(st *settings.Settings, t *oauth2.Token, seed, login string) *settings.StoredToken {
	e := settings.NewStoredToken(t, seed, login)
	st.SetToken(s.Key(), e)
	st.ForgetDerived(s.Key())
	return e
}

func (s *Source) told(origin string, t *oauth2.Token) {
	if s.OnToken != nil {
		s.OnToken(origin, t)
	}
}

// givenToken is the token of AccessToken with its expiry worked out.
func (s *Source) givenToken() *oauth2.Token {
	t := &oauth2.Token{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Expiry: s.Expiry}
	if t.Expiry.IsZero() && t.AccessToken != "" {
		t.Expiry = JWTExpiry(t.AccessToken)
	}
	if t.Expiry.IsZero() {
		t.Expiry = time.Unix(1, 0) // unknown: treat as expired, refresh at once
	}
	if t.Expiry.Equal(NeverExpires()) {
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

// Token returns a usable workspace token (oauth2.TokenSource).
func (s *Source) Token() (*oauth2.Token, error) { return s.TokenContext(context.Background()) }

// TokenContext returns a usable workspace token.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if s.Mode == ModeOff {
		if s.AccessToken == "" {
			if s.hasStoredLogin(ctx) {
				return nil, fmt.Errorf("%w: InitiateOAuth=OFF uses only OAuthAccessToken, and none is set; a login is stored in %s: set InitiateOAuth=REFRESH to use it", ErrNoToken, s.Store.Location())
			}
			if s.Scheme == SchemeClient {
				return nil, fmt.Errorf("%w: InitiateOAuth=OFF and no OAuthAccessToken is set; get one with EXEC GetOAuthAccessToken (or EXEC RefreshOAuthAccessToken), or set InitiateOAuth=GETANDREFRESH to let the driver get and refresh tokens", ErrNoToken)
			}
			return nil, fmt.Errorf("%w: InitiateOAuth=OFF and no OAuthAccessToken is set; log in (lakebase login, or EXEC GetOAuthAuthorizationURL then EXEC GetOAuthAccessToken) and set InitiateOAuth=REFRESH to use the stored login (GETANDREFRESH also opens a browser here when none is stored)", ErrNoToken)
		}
		t := s.givenToken()
		if t.Expiry.Equal(time.Unix(1, 0)) {
			t.Expiry = time.Time{} // OFF never refreshes; an unknown expiry is used as is
		}
		if !ValidFor(t, time.Now(), 0) {
			return nil, fmt.Errorf("%w: OAuthAccessToken expired at %s and InitiateOAuth=OFF never refreshes it", ErrNoToken, t.Expiry.Format(time.RFC3339))
		}
		s.told("given", t)
		return t, nil
	}
	var out *oauth2.Token
	var entry *settings.StoredToken
	needLogin := false
	err := s.Store.Update(ctx, func(st *settings.Settings) (bool, error) {
		s.restoreUnsaved(st)
		t, login, err := s.tokenLocked(ctx, st)
		out, needLogin, entry = t, login, st.Token(s.Key())
		return true, err
	})
	if err = s.keepUnsaved(err, out, entry); err != nil || !needLogin {
		return out, err
	}
	// A person's login takes minutes: it runs outside the store's lock, and its
	// token is stored afterwards (unless another process logged in meanwhile, whose
	// token is then used).
	nt, err := s.Login(ctx)
	if err != nil {
		return nil, err
	}
	err = s.Store.Update(ctx, func(st *settings.Settings) (bool, error) {
		s.replace(st, nt, "", settings.NewLoginID())
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.told("login", nt)
	return nt, nil
}

// restoreUnsaved puts back a token entry the store could not keep, unless the store
// meanwhile holds a newer one of the same login (another process wrote it).
func (s *Source) restoreUnsaved(st *settings.Settings) {
	h := s.held()
	h.mu.Lock()
	u := h.entry
	h.mu.Unlock()
	if u == nil {
		return
	}
	if e := st.Token(s.Key()); e == nil || e.Login != u.Login || e.Updated.Before(u.Updated) {
		cp := *u
		st.SetToken(s.Key(), &cp)
	}
}

// keepUnsaved handles the outcome of a store update that got a token: when the
// store could not be written (full disk, read-only mount), the token entry is kept
// in memory for the next update to write, the failure is reported to OnUnsaved, and
// the token is used. Once a write succeeds, nothing is held.
func (s *Source) keepUnsaved(err error, tok *oauth2.Token, entry *settings.StoredToken) error {
	var se *settings.SettingsFileError
	h := s.held()
	if err == nil {
		h.mu.Lock()
		h.entry = nil
		h.mu.Unlock()
		return nil
	}
	if tok == nil || entry == nil || !errors.As(err, &se) || !se.Unwritable {
		return err
	}
	cp := *entry
	h.mu.Lock()
	h.entry = &cp
	h.mu.Unlock()
	if s.OnUnsaved != nil {
		s.OnUnsaved(err)
	}
	return nil
}

// dropUnsaved forgets a token the store could not keep (a logout, a new login).
func (s *Source) dropUnsaved() {
	h := s.held()
	h.mu.Lock()
	h.entry = nil
	h.mu.Unlock()
}

// hasStoredLogin reports whether the store holds a token for this source (a store
// that cannot be read holds none as far as a message is concerned).
func (s *Source) hasStoredLogin(ctx context.Context) bool {
	ok, _ := s.HasStoredLogin(ctx)
	return ok
}

// HasStoredLogin reports whether the store holds a token for this source.
func (s *Source) HasStoredLogin(ctx context.Context) (bool, error) {
	if s.Store == nil {
		return false, nil
	}
	found := false
	err := s.Store.Update(ctx, func(st *settings.Settings) (bool, error) {
		found = st.Token(s.Key()) != nil
		return false, nil
	})
	return found, err
}

// tokenLocked runs with the store locked. login reports that a person must log in
// (the caller runs Login outside the lock).
//
// Login material in the connection string that the store does not hold yet (an
// authorization code to redeem, or tokens given) is a new login: it replaces the
// stored one, and what was derived from that, before anything stored is used.
func (s *Source) tokenLocked(ctx context.Context, st *settings.Settings) (_ *oauth2.Token, login bool, _ error) {
	key := s.Key()
	e := st.Token(key)
	if seed := s.seed(); seed != "" && (e == nil || e.Seed != seed) {
		if s.Verifier != "" {
			nt, err := s.exchangeVerifierLocked(ctx, st)
			if err != nil {
				return nil, false, err
			}
			s.replace(st, nt, seed, settings.NewLoginID())
			s.told("verifier", nt)
			return nt, false, nil
		}
		e = s.replace(st, s.givenToken(), seed, settings.NewLoginID())
	}
	if e != nil && e.Login == "" {
		e.Login = settings.NewLoginID() // written before logins were named
	}
	now := time.Now()
	if e != nil && ValidFor(e.Token(), now, max(TokenSkew(e), HostTokenMargin(s.Workspace))) {
		t := e.Token()
		s.told("stored", t)
		return t, false, nil
	}
	if e != nil && e.RefreshToken != "" {
		nt, err := s.Client.Refresh(ctx, e.RefreshToken)
		if err == nil {
			st.SetToken(key, settings.NewStoredToken(nt, e.Seed, e.Login)) // the same login, refreshed
			s.told("refreshed", nt)
			return nt, false, nil
		}
		if !errors.Is(err, ErrReloginRequired) {
			if ValidFor(e.Token(), time.Now(), 0) {
				return e.Token(), false, nil // a failed refresh keeps a still-valid token
			}
			return nil, false, err
		}
		// The refresh token is dead: forget it, and get a new login if allowed.
		st.DeleteToken(key)
		if s.Mode != ModeGetAndRefresh || (s.Scheme == SchemePKCE && s.Login == nil) {
			return nil, false, err
		}
	}
	if s.Mode == ModeGetAndRefresh {
		switch {
		case s.Scheme == SchemeClient:
			nt, err := s.Client.ClientCredentials(ctx, s.Scope)
			if err != nil {
				return nil, false, err
			}
			if e != nil && e.Login == clientLogin {
				st.SetToken(key, settings.NewStoredToken(nt, "", clientLogin)) // the same identity
			} else {
				s.replace(st, nt, "", clientLogin)
			}
			s.told("client_credentials", nt)
			return nt, false, nil
		case s.Login != nil:
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("%w: no stored login for %s in %s", ErrNoToken, s.Workspace, s.Store.Location())
	}
	if e != nil && e.RefreshToken == "" && e.AccessToken != "" {
		return nil, false, fmt.Errorf("%w: the stored access token expired at %s and there is no refresh token; log in again with EXEC GetOAuthAccessToken", ErrNoToken, e.Expiry.Format(time.RFC3339))
	}
	if s.Scheme == SchemePKCE {
		return nil, false, fmt.Errorf("%w: no stored login for %s in %s; log in first: lakebase login (lakebase login -headless on a machine without a browser), or EXEC GetOAuthAuthorizationURL then OAuthVerifier=<code>; InitiateOAuth=GETANDREFRESH opens a browser here instead", ErrNoToken, s.Workspace, s.Store.Location())
	}
	return nil, false, fmt.Errorf("%w: no stored login for %s in %s; run EXEC GetOAuthAuthorizationURL and EXEC GetOAuthAccessToken, set OAuthVerifier, or set InitiateOAuth=GETANDREFRESH", ErrNoToken, s.Workspace, s.Store.Location())
}

// exchangeVerifierLocked redeems Verifier with the PKCE verifier of the newest
// pending authorization for this source.
func (s *Source) exchangeVerifierLocked(ctx context.Context, st *settings.Settings) (*oauth2.Token, error) {
	var state string
	var p *settings.Pending
	for k, c := range st.Pending {
		if c.Key == s.Key().String() && (p == nil || c.Created.After(p.Created)) {
			state, p = k, c
		}
	}
	if p == nil {
		return nil, fmt.Errorf("%w: OAuthVerifier is set but %s holds no pending authorization (run EXEC GetOAuthAuthorizationURL with this OAuthSettingsLocation first; it is kept %v)", ErrNoToken, s.Store.Location(), settings.PendingTTL)
	}
	cb := p.CallbackURL
	if cb == "" {
		cb = s.CallbackURL
	}
	nt, err := s.Client.Exchange(ctx, s.Verifier, p.Verifier, cb)
	if err != nil {
		return nil, err
	}
	delete(st.Pending, state)
	return nt, nil
}

// Save stores a token obtained elsewhere (by a login step) as this source's token;
// what was derived from the previous login (credentials, user name) goes.
func (s *Source) Save(ctx context.Context, t *oauth2.Token) error {
	s.dropUnsaved()
	return s.Store.Update(ctx, func(st *settings.Settings) (bool, error) {
		// The seed is the connection string's, so its material does not replace
		// this login again at the next start.
		s.replace(st, t, s.seed(), settings.NewLoginID())
		return true, nil
	})
}

// Drop removes this source's stored token if it is still tok (a workspace API
// refused it), so neither this process nor another hands it out again.
func (s *Source) Drop(ctx context.Context, tok string) error {
	if s.Mode == ModeOff {
		return nil
	}
	return s.Store.Update(ctx, func(st *settings.Settings) (bool, error) {
		if e := st.Token(s.Key()); e != nil && e.AccessToken == tok {
			if e.RefreshToken == "" && e.Seed == "" {
				st.DeleteToken(s.Key()) // nothing else worth keeping
				return true, nil
			}
			// Keep the entry (its refresh token, and the seed that says the token given
			// in the connection string was used up): only the access token was refused.
			e.AccessToken, e.Expiry = "", time.Unix(1, 0)
			return true, nil
		}
		return false, nil
	})
}

// Forget removes this source's stored token, and the database credentials, user
// name and host lookups stored with it.
func (s *Source) Forget(ctx context.Context) error {
	s.dropUnsaved()
	return s.Store.Update(ctx, func(st *settings.Settings) (bool, error) {
		st.DeleteToken(s.Key())
		st.ForgetDerived(s.Key())
		st.ForgetLookups(s.Workspace)
		return true, nil
	})
}
