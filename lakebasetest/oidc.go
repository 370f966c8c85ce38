package lakebasetest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type authRequest struct {
	clientID, redirectURI, state, challenge, scope string
	// user is who signs in: the login_hint when it names a registered person (as
	// OpenID Connect's login_hint), else Server.User.
	user    string
	created time.Time
}

type authCode struct {
	authRequest
	subject string
	expires time.Time
}

// refreshToken is a refresh token not spent yet: with rotation, the one its
// family's holder spends next. A spent token is not kept: its family is in the
// token itself (newRefreshToken), so a reuse of any token a family ever had is
// caught (the family is revoked) with one token kept per family, however many
// times it was rotated.
type refreshToken struct {
	family   string
	clientID string
	subject  string
	scope    string
}

// refreshPrefix starts every refresh token the workspace issues.
const refreshPrefix = "doau"

// newRefreshToken is a new refresh token of family (16 hex digits): the family,
// then 128 random bits. Knowing a family gives nothing a token of it does not:
// the family is only ever seen in its tokens.
func newRefreshToken(family string) string { return refreshPrefix + family + randHex(16) }

// familyOf is the family of a refresh token the workspace issued, spent or not
// (s.mu held), or "" for one it never issued a family of.
func (s *Server) familyOf(tok string) string {
	if rt := s.refresh[tok]; rt != nil {
		return rt.family
	}
	if f, ok := s.spent[tok]; ok {
		return f
	}
	if len(tok) != len(refreshPrefix)+16+32 || !strings.HasPrefix(tok, refreshPrefix) {
		return ""
	}
	f := tok[len(refreshPrefix) : len(refreshPrefix)+16]
	if s.families[f] || s.liveFamily(f) != nil {
		return f
	}
	return ""
}

// liveFamily is the unspent token of family f (s.mu held), if any.
func (s *Server) liveFamily(f string) *refreshToken {
	for _, rt := range s.refresh {
		if rt.family == f {
			return rt
		}
	}
	return nil
}

type tokenClaims struct {
	Scope string `json:"scope,omitempty"`
	Kind  string `json:"kind,omitempty"`  // "access" or "db"
	AppID string `json:"appid,omitempty"` // Entra tokens
	// Endpoint is the endpoint a database credential was minted for.
	Endpoint string `json:"ep,omitempty"`
	// IssuedNano is the issue time in nanoseconds (iat has only seconds).
	IssuedNano int64 `json:"iat_ns,omitempty"`
	// Scoped is the scope of a scoped database credential (claims).
	Scoped *CredentialScope `json:"scoped,omitempty"`
	jwt.RegisteredClaims
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	disc := func(w http.ResponseWriter, r *http.Request) {
		if !s.gate(EPDiscovery, w, r) {
			return
		}
		if !s.oidcPath(w, r) {
			return
		}
		base := s.oidcBase()
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                base,
			"authorization_endpoint":                base + "/v1/authorize",
			"token_endpoint":                        base + "/v1/token",
			"jwks_uri":                              base + "/v1/keys",
			"response_types_supported":              []string{"code"},
			"grant_types_supported":                 []string{"client_credentials", "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"},
			"code_challenge_methods_supported":      []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
			"scopes_supported":                      []string{"all-apis", "offline_access", "postgres", "sql"},
		})
	}
	// A workspace host serves OIDC at /oidc; a unified host at the account's path.
	for _, prefix := range []string{"/oidc", "/oidc/accounts/{account}"} {
		mux.HandleFunc("GET "+prefix+"/.well-known/oauth-authorization-server", disc)
		mux.HandleFunc("GET "+prefix+"/.well-known/openid-configuration", disc)
		mux.HandleFunc("GET "+prefix+"/v1/keys", s.oidcOnly(s.handleJWKS))
		mux.HandleFunc("GET "+prefix+"/v1/authorize", s.oidcOnly(s.handleAuthorize))
		mux.HandleFunc("POST "+prefix+"/v1/authorize/decision", s.oidcOnly(s.handleDecision))
		mux.HandleFunc("POST "+prefix+"/v1/token", s.oidcOnly(s.handleToken))
	}
	mux.HandleFunc("GET /.well-known/databricks-config", s.handleHostMetadata)
	mux.HandleFunc("GET /login/{$}", s.handleLoginHost)
	mux.HandleFunc("GET /{$}", s.handleLoginHost) // the workspace URL itself may be given as LoginHost
	s.apiRoutes(mux)
	return mux
}

// oidcBase is where OIDC lives: <URL>/oidc on a workspace host, the account's
// <URL>/oidc/accounts/<AccountID> on a unified host (as its metadata says).
func (s *Server) oidcBase() string {
	if s.opts.UnifiedHost {
		return s.URL + "/oidc/accounts/" + s.AccountID
	}
	return s.URL + "/oidc"
}

// oidcPath answers 404 for an OIDC path that is not where this host serves OIDC.
func (s *Server) oidcPath(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, strings.TrimPrefix(s.oidcBase(), s.URL)+"/") {
		http.NotFound(w, r)
		return false
	}
	return true
}

func (s *Server) oidcOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.oidcPath(w, r) {
			h(w, r)
		}
	}
}

// LoginHost is the emulator's stand-in for https://login.databricks.com: give it
// as the driver's LoginHost (the workspace URL itself serves it too). A host-agnostic login starts there, names the
// workspace's authorize path and query as destination_url, and is sent on to this
// workspace (the only one it knows), as the real one is after the person picks a
// workspace.
func (s *Server) LoginHost() string { return s.URL + "/login" }

func (s *Server) handleLoginHost(w http.ResponseWriter, r *http.Request) {
	if !s.gate(EPLoginHost, w, r) {
		return
	}
	dest := r.URL.Query().Get("destination_url")
	u, err := url.Parse(dest)
	if err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, "/oidc/v1/authorize") {
		http.Error(w, "destination_url must be the workspace's /oidc/v1/authorize path and query", http.StatusBadRequest)
		return
	}
	// A unified host's authorize path is the account's.
	path := strings.TrimPrefix(s.oidcBase(), s.URL) + strings.TrimPrefix(u.Path, "/oidc")
	http.Redirect(w, r, s.URL+path+"?"+u.RawQuery, http.StatusFound)
}

// handleHostMetadata serves GET /.well-known/databricks-config, as the Go SDK reads
// it: where OIDC lives ({account_id} left for the client to fill in on a unified
// host), the workspace and account ids, the host type.
func (s *Server) handleHostMetadata(w http.ResponseWriter, r *http.Request) {
	if !s.gate(EPHostMetadata, w, r) {
		return
	}
	meta := map[string]any{"oidc_endpoint": s.URL + "/oidc", "workspace_id": s.WorkspaceID, "account_id": s.AccountID,
		"host_type": "WORKSPACE_HOST", "cloud": "AWS"}
	if s.opts.UnifiedHost {
		meta["oidc_endpoint"] = s.URL + "/oidc/accounts/{account_id}"
		meta["host_type"] = "UNIFIED_HOST"
	}
	writeJSON(w, http.StatusOK, meta)
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if !s.gate(EPJWKS, w, r) {
		return
	}
	pub := s.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": s.keyID,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// redirectAllowed: a public client may use any loopback http redirect (as databricks-cli
// does); a confidential client may use any http(s) redirect on loopback hosts.
func redirectAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Fragment != "" {
		return false
	}
	h := u.Hostname()
	return (u.Scheme == "http" || u.Scheme == "https") && (h == "localhost" || h == "127.0.0.1" || h == "::1")
}

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if !s.gate(EPAuthorize, w, r) {
		return
	}
	q := r.URL.Query()
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	s.mu.Lock()
	_, known := s.clients[clientID]
	s.mu.Unlock()
	if !known {
		http.Error(w, "invalid_client: unknown client_id", http.StatusBadRequest)
		return
	}
	if !redirectAllowed(redirectURI) {
		http.Error(w, "invalid_request: redirect_uri is not allowed for this client", http.StatusBadRequest)
		return
	}
	fail := func(code, desc string) {
		v := url.Values{"error": {code}, "error_description": {desc}}
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		http.Redirect(w, r, appendQuery(redirectURI, v), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	}
	scope := q.Get("scope")
	if scope == "" {
		scope = "all-apis offline_access"
	}
	user := s.User.Email
	if hint := q.Get("login_hint"); hint != "" {
		s.mu.Lock()
		known := s.users[hint]
		s.mu.Unlock()
		if !known {
			fail("access_denied", "login_hint names no person of this workspace")
			return
		}
		user = hint
	}
	req := &authRequest{clientID: clientID, redirectURI: redirectURI, state: q.Get("state"),
		challenge: q.Get("code_challenge"), scope: scope, user: user, created: time.Now()}
	if s.autoApp.Load() {
		s.approve(w, r, req)
		return
	}
	id := randHex(16)
	s.mu.Lock()
	s.pending[id] = req
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	action := strings.TrimPrefix(s.oidcBase(), s.URL) + "/v1/authorize/decision"
	consentPage.Execute(w, map[string]string{"ID": id, "Client": clientID, "User": user, "Scope": scope, "Workspace": s.URL, "Action": action})
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, req *authRequest) {
	code := randHex(20)
	s.remember(code)
	s.mu.Lock()
	s.codes[code] = &authCode{authRequest: *req, subject: req.user, expires: time.Now().Add(5 * time.Minute)}
	s.mu.Unlock()
	// iss names the authorization server (RFC 9207), as Databricks' callbacks do: a
	// login through the login host learns the workspace from it.
	v := url.Values{"code": {code}, "iss": {s.oidcBase()}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	s.logf("authorize: approved for %s", req.user)
	http.Redirect(w, r, appendQuery(req.redirectURI, v), http.StatusFound)
}

func (s *Server) handleDecision(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	req := s.pending[r.PostForm.Get("request")]
	delete(s.pending, r.PostForm.Get("request"))
	s.mu.Unlock()
	if req == nil || time.Since(req.created) > 10*time.Minute {
		http.Error(w, "this sign-in request expired; start again", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("decision") != "approve" {
		v := url.Values{"error": {"access_denied"}, "error_description": {"the user denied access"}}
		if req.state != "" {
			v.Set("state", req.state)
		}
		http.Redirect(w, r, appendQuery(req.redirectURI, v), http.StatusFound)
		return
	}
	s.approve(w, r, req)
}

func appendQuery(raw string, v url.Values) string {
	u, _ := url.Parse(raw)
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Lakebase emulator</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;color:#1b3139}
.card{border:1px solid #ccd;border-radius:8px;padding:1.5rem}button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}</style>
</head><body><div class="card">
<h1>Authorize access</h1>
<p><strong id="client">{{.Client}}</strong> wants to access the workspace <code>{{.Workspace}}</code> as</p>
<p id="identity"><strong>{{.User}}</strong></p>
<p>Scopes: <code id="scope">{{.Scope}}</code></p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.ID}}">
<button id="approve" type="submit" name="decision" value="approve">Approve</button>
<button id="deny" type="submit" name="decision" value="deny">Deny</button>
</form></div></body></html>`))

// oauthError writes an RFC 6749 error body.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="oidc"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if !s.gate(EPToken, w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	grant := r.PostForm.Get("grant_type")
	s.count(EPToken + ":" + grant)
	switch grant {
	case "client_credentials":
		s.grantClientCredentials(w, r)
	case "authorization_code":
		s.grantAuthorizationCode(w, r)
	case "refresh_token":
		s.grantRefreshToken(w, r)
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		s.grantTokenExchange(w, r)
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+grant+" is not supported")
	}
}

// clientAuth returns the client id and secret from HTTP Basic or the form.
func clientAuth(r *http.Request) (id, secret string, basic bool) {
	if id, secret, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		return id, secret, true
	}
	return r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), false
}

func (s *Server) grantClientCredentials(w http.ResponseWriter, r *http.Request) {
	id, secret, _ := clientAuth(r)
	s.mu.Lock()
	want, ok := s.clients[id]
	s.mu.Unlock()
	if !ok || want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		scope = "all-apis"
	}
	if strings.Contains(" "+scope+" ", " offline_access ") {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "offline_access is not allowed with client_credentials")
		return
	}
	s.writeTokens(w, id, scope, "", "")
}

func (s *Server) grantAuthorizationCode(w http.ResponseWriter, r *http.Request) {
	id, secret, _ := clientAuth(r)
	code := r.PostForm.Get("code")
	s.mu.Lock()
	ac := s.codes[code]
	delete(s.codes, code) // single use
	want, known := s.clients[id]
	s.mu.Unlock()
	if !known || (want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	if ac == nil || time.Now().After(ac.expires) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code is invalid, expired or already used")
		return
	}
	if ac.clientID != id {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code was issued to another client")
		return
	}
	if r.PostForm.Get("redirect_uri") != ac.redirectURI {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	}
	verifier := r.PostForm.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	if verifier == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != ac.challenge {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge")
		return
	}
	family := ""
	if strings.Contains(" "+ac.scope+" ", " offline_access ") {
		family = randHex(8)
	}
	s.writeTokens(w, ac.subject, ac.scope, family, id)
}

func (s *Server) grantRefreshToken(w http.ResponseWriter, r *http.Request) {
	id, secret, _ := clientAuth(r)
	tok := r.PostForm.Get("refresh_token")
	s.mu.Lock()
	want, known := s.clients[id]
	s.mu.Unlock()
	if !known || (want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	s.mu.Lock()
	rt := s.refresh[tok]
	family := s.familyOf(tok)
	holder := rt
	if holder == nil && family != "" {
		holder = s.liveFamily(family)
	}
	if family == "" || (holder != nil && holder.clientID != id) {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid")
		return
	}
	if s.families[family] {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was revoked")
		return
	}
	if rt == nil { // a token of the family, spent
		if s.reuseDet.Load() {
			s.families[family] = true
			s.counts["refresh.reuse_detected"]++
			s.mu.Unlock()
			s.logf("token: reuse of a rotated refresh token; family revoked")
			s.saveRefresh()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token reuse detected; the session was revoked")
			return
		}
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was already used")
		return
	}
	next := tok
	if s.rotation.Load() {
		// Spent and replaced in one step: a concurrent use of tok finds it spent.
		delete(s.refresh, tok)
		next = newRefreshToken(family)
		s.refresh[next] = &refreshToken{family: family, clientID: rt.clientID, subject: rt.subject, scope: rt.scope}
	}
	s.mu.Unlock()
	if next != tok {
		s.remember(next)
		s.saveRefresh() // the new token, and the one it replaces spent, before the answer
	}
	s.writeTokensKeepRefresh(w, rt.subject, rt.scope, next)
}

// writeTokens issues an access token, plus a new refresh token of family when family is set.
func (s *Server) writeTokens(w http.ResponseWriter, subject, scope, family, clientID string) {
	access, ttl, err := s.issueAccess(subject, scope)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	body := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int(ttl / time.Second), "scope": scope}
	if family != "" {
		rtok := newRefreshToken(family)
		s.remember(rtok)
		s.mu.Lock()
		s.refresh[rtok] = &refreshToken{family: family, clientID: clientID, subject: subject, scope: scope}
		s.mu.Unlock()
		s.saveRefresh() // before the answer
		body["refresh_token"] = rtok
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// saveRefresh writes the refresh tokens to the data directory (if any) now, not
// at the next second's save: a killed emulator keeps every token it answered
// with, every token spent and every family revoked.
func (s *Server) saveRefresh() {
	if err := s.saveState(); err != nil {
		s.logf("data directory: saving: %v", err)
	}
}

func (s *Server) writeTokensKeepRefresh(w http.ResponseWriter, subject, scope, refresh string) {
	access, ttl, err := s.issueAccess(subject, scope)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int(ttl / time.Second), "scope": scope, "refresh_token": refresh})
}

func (s *Server) issueAccess(subject, scope string) (string, time.Duration, error) {
	s.mu.Lock()
	ttl := s.tokenTTL
	s.mu.Unlock()
	tok, err := s.sign(tokenClaims{Scope: scope, Kind: "access"}, subject, ttl)
	return tok, ttl, err
}

func (s *Server) sign(c tokenClaims, subject string, ttl time.Duration) (string, error) {
	now := time.Now()
	c.IssuedNano = now.UnixNano()
	iss, aud := s.URL+"/oidc", s.URL
	if c.Kind == "entra" {
		iss, aud = EntraIssuer(s.AzureTenant), AzureDatabricksResource
	}
	c.RegisteredClaims = jwt.RegisteredClaims{
		Issuer:    iss,
		Subject:   subject,
		Audience:  jwt.ClaimStrings{aud},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        randHex(12),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = s.keyID
	signed, err := t.SignedString(s.key)
	if err == nil {
		s.remember(signed)
	}
	return signed, err
}

// parseJWT checks the signature and expiry of a token this server issued. The caller
// holds s.mu or does not need it.
func (s *Server) parseJWT(tok string) (*tokenClaims, error) {
	c := &tokenClaims{}
	_, err := jwt.ParseWithClaims(tok, c, func(t *jwt.Token) (any, error) { return &s.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(s.now))
	if err != nil {
		return nil, err
	}
	switch {
	case c.Issuer == s.URL+"/oidc":
	case c.Kind == "entra" && c.Issuer == EntraIssuer(s.AzureTenant):
	default:
		return nil, errors.New("the token was issued by another issuer")
	}
	return c, nil
}

// bearer authenticates a workspace API request; it returns the token's subject.
func (s *Server) bearer(w http.ResponseWriter, r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Bearer ") {
		writeAPIError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "missing bearer token")
		return "", false
	}
	c, err := s.parseJWT(strings.TrimPrefix(h, "Bearer "))
	if err != nil || (c.Kind != "access" && c.Kind != "entra") {
		msg := "invalid access token"
		if errors.Is(err, jwt.ErrTokenExpired) {
			msg = "the access token expired"
		}
		writeAPIError(w, s.invalidTokenStatus(), "PERMISSION_DENIED", "Invalid access token. ("+msg+")")
		return "", false
	}
	s.mu.Lock()
	revoked := s.revoked[c.ID]
	s.mu.Unlock()
	if revoked {
		writeAPIError(w, s.invalidTokenStatus(), "PERMISSION_DENIED", "Invalid access token. (revoked)")
		return "", false
	}
	sc := " " + c.Scope + " "
	if c.Kind != "entra" && !strings.Contains(sc, " all-apis ") && !strings.Contains(sc, " postgres ") {
		writeAPIError(w, http.StatusForbidden, "PERMISSION_DENIED", "the token's scope does not allow this API (needs all-apis or postgres)")
		return "", false
	}
	return c.Subject, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeAPIError writes a Databricks REST error body.
func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "message": msg})
}
