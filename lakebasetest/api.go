package lakebasetest

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lakebase-go/lakebase/workspace"
)

func (s *Server) apiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/2.0/postgres/credentials", s.handleAutoscalingCredential)
	mux.HandleFunc("POST /api/2.0/database/credentials", s.handleProvisionedCredential)
	mux.HandleFunc("GET /api/2.0/database/instances", s.handleListInstances)
	mux.HandleFunc("GET /api/2.0/database/instances/{name}", s.handleGetInstance)
	mux.HandleFunc("GET /api/2.0/postgres/projects", s.handleListProjects)
	mux.HandleFunc("GET /api/2.0/postgres/projects/{p}/branches", s.handleListBranches)
	mux.HandleFunc("GET /api/2.0/postgres/projects/{p}/branches/{b}/endpoints", s.handleListEndpoints)
	mux.HandleFunc("GET /api/2.0/postgres/projects/{p}/branches/{b}/endpoints/{e}", s.handleGetEndpoint)
	mux.HandleFunc("POST /api/2.0/postgres/projects/{p}/branches", s.handleCreateBranch)
	mux.HandleFunc("GET /api/2.0/postgres/projects/{p}/branches/{b}", s.handleGetBranch)
	mux.HandleFunc("DELETE /api/2.0/postgres/projects/{p}/branches/{b}", s.handleDeleteBranch)
	mux.HandleFunc("POST /api/2.0/postgres/projects/{p}/branches/{b}/endpoints", s.handleCreateEndpoint)
	mux.HandleFunc("GET /api/2.0/postgres/projects/{p}/branches/{b}/operations/{op}", s.handleGetOperation)
	mux.HandleFunc("POST /api/2.0/postgres/projects/{p}/branches/{b}/roles", s.handleCreateRole)
	mux.HandleFunc("GET /api/2.0/postgres/projects/{p}/branches/{b}/roles", s.handleListRoles)
	mux.HandleFunc("GET /api/2.0/postgres/projects/{p}/branches/{b}/roles/{r}", s.handleGetRole)
	mux.HandleFunc("DELETE /api/2.0/postgres/projects/{p}/branches/{b}/roles/{r}", s.handleDeleteRole)
	mux.HandleFunc("POST /api/2.0/database/instances/{name}/roles", s.handleCreateInstanceRole)
	mux.HandleFunc("GET /api/2.0/database/instances/{name}/roles", s.handleListInstanceRoles)
	mux.HandleFunc("GET /api/2.0/database/instances/{name}/roles/{role}", s.handleGetInstanceRole)
	mux.HandleFunc("DELETE /api/2.0/database/instances/{name}/roles/{role}", s.handleDeleteInstanceRole)
	mux.HandleFunc("GET /api/2.0/preview/scim/v2/Me", s.handleMe)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleEntraToken)
	mux.HandleFunc("GET /metadata/identity/oauth2/token", s.handleIMDS)
}

// AzureDatabricksResource is the Entra ID application id of Azure Databricks.
const AzureDatabricksResource = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"

// EntraIssuer is the issuer of the emulated Entra ID tokens of tenant.
func EntraIssuer(tenant string) string { return "https://sts.windows.net/" + tenant + "/" }

// SetManagedIdentity makes the emulated instance metadata endpoint
// (/metadata/identity/oauth2/token) hand out tokens of the managed identity with
// this client id, and creates its Postgres role.
func (s *Server) SetManagedIdentity(clientID string) error {
	s.mu.Lock()
	s.msi = clientID
	s.mu.Unlock()
	return s.CreateRole(clientID)
}

func (s *Server) issueEntra(appID string) (string, int, error) {
	s.mu.Lock()
	ttl := s.tokenTTL
	s.mu.Unlock()
	tok, err := s.sign(tokenClaims{Kind: "entra", AppID: appID}, appID, ttl)
	return tok, int(ttl / time.Second), err
}

// handleEntraToken emulates Microsoft Entra ID's v2 token endpoint for the
// client-credentials grant of an app registration (a service principal here).
func (s *Server) handleEntraToken(w http.ResponseWriter, r *http.Request) {
	if !s.gate(EPEntraToken, w, r) {
		return
	}
	if r.PathValue("tenant") != s.AzureTenant {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant not found.")
		return
	}
	r.ParseForm()
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: unsupported grant type")
		return
	}
	s.mu.Lock()
	want, ok := s.clients[f.Get("client_id")]
	s.mu.Unlock()
	if !ok || want == "" || want != f.Get("client_secret") {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	if f.Get("scope") != AzureDatabricksResource+"/.default" {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: the scope must be "+AzureDatabricksResource+"/.default")
		return
	}
	tok, secs, err := s.issueEntra(f.Get("client_id"))
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok})
}

// handleIMDS emulates the Azure instance metadata endpoint for managed identities.
func (s *Server) handleIMDS(w http.ResponseWriter, r *http.Request) {
	if !s.gate(EPIMDS, w, r) {
		return
	}
	if r.Header.Get("Metadata") != "true" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required metadata header not specified"})
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	msi := s.msi
	s.mu.Unlock()
	if msi == "" || (q.Get("client_id") != "" && q.Get("client_id") != msi) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"})
		return
	}
	if q.Get("resource") != AzureDatabricksResource {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_resource", "error_description": "the resource must be " + AzureDatabricksResource})
		return
	}
	tok, secs, err := s.issueEntra(msi)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"access_token": tok, "client_id": msi, "expires_in": strconv.Itoa(secs),
		"expires_on": strconv.FormatInt(time.Now().Add(time.Duration(secs)*time.Second).Unix(), 10),
		"resource":   AzureDatabricksResource, "token_type": "Bearer"})
}

// api gates a workspace API request (outage, latency, errors, counters) and
// authenticates its bearer token; it returns the token's subject.
func (s *Server) api(endpoint string, w http.ResponseWriter, r *http.Request) (string, bool) {
	if !s.gate(endpoint, w, r) {
		return "", false
	}
	if s.opts.UnifiedHost {
		// A unified host serves many workspaces: each call must say which.
		if got := r.Header.Get("X-Databricks-Workspace-Id"); got != s.WorkspaceID {
			s.count(EPNoWorkspaceID)
			msg := "This host serves several workspaces: set the X-Databricks-Workspace-Id header to the workspace id."
			if got != "" {
				msg = fmt.Sprintf("Workspace %s is not available on this host.", got)
			}
			writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", msg)
			return "", false
		}
	}
	return s.bearer(w, r)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		writeAPIError(w, http.StatusBadRequest, "MALFORMED_REQUEST", "the request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

// issueCredential mints a database credential for subject with lifetime ttl (capped
// by the credential-lifetime knob).
func (s *Server) issueCredential(subject string, ttl time.Duration) (string, time.Time, error) {
	return s.issueCredentialFor(subject, ttl, "")
}

// issueCredentialFor is issueCredential for an endpoint (which routes the session
// to that endpoint's branch).
func (s *Server) issueCredentialFor(subject string, ttl time.Duration, endpoint string, scope ...*CredentialScope) (string, time.Time, error) {
	s.mu.Lock()
	if s.credTTL > 0 && s.credTTL < ttl {
		ttl = s.credTTL
	}
	s.mu.Unlock()
	tc := tokenClaims{Kind: "db", Endpoint: endpoint}
	if len(scope) > 0 {
		tc.Scoped = scope[0]
	}
	tok, err := s.sign(tc, subject, ttl)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, time.Now().Add(ttl).UTC(), nil
}

func (s *Server) handleAutoscalingCredential(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.api(EPCredAutoscaling, w, r)
	if !ok {
		return
	}
	var body struct {
		Endpoint   string      `json:"endpoint"`
		TTL        string      `json:"ttl"`
		ExpireTime string      `json:"expire_time"`
		Claims     []credClaim `json:"claims"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Endpoint == "" {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "endpoint is required")
		return
	}
	if body.Endpoint != s.Endpoint && s.branchDatabase(body.Endpoint) == "" {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Endpoint %s does not exist", body.Endpoint))
		return
	}
	ttl := time.Hour
	if body.TTL != "" {
		d, err := time.ParseDuration(body.TTL)
		if err != nil || !strings.HasSuffix(body.TTL, "s") || d < 300*time.Second || d > 3600*time.Second {
			writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "ttl must be a duration in seconds from 300s to 3600s, e.g. \"3600s\"")
			return
		}
		ttl = d
	}
	if body.ExpireTime != "" {
		// The other way to ask for a lifetime: an instant, 300 s to 1 h from now.
		at, err := time.Parse(time.RFC3339Nano, body.ExpireTime)
		d := time.Until(at)
		if err != nil || body.TTL != "" || d < 299*time.Second || d > 3601*time.Second {
			writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "expire_time must be an RFC 3339 time from 300s to 3600s from now, and not given with ttl")
			return
		}
		ttl = d
	}
	scope, msg := checkClaims(body.Claims)
	if msg != "" {
		writeClaimsError(w, msg)
		return
	}
	tok, exp, err := s.issueCredentialFor(sub, ttl, body.Endpoint, scope)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	out := map[string]any{"token": tok}
	if v, ok := s.expiryValue(exp); ok {
		out["expire_time"] = v
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleProvisionedCredential(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.api(EPCredProvisioned, w, r)
	if !ok {
		return
	}
	var body struct {
		RequestID     string      `json:"request_id"`
		InstanceNames []string    `json:"instance_names"`
		Claims        []credClaim `json:"claims"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.RequestID == "" {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "request_id is required")
		return
	}
	if len(body.InstanceNames) == 0 {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "instance_names is required")
		return
	}
	for _, n := range body.InstanceNames {
		if n != s.Instance {
			writeAPIError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Database instance '%s' does not exist.", n))
			return
		}
	}
	scope, msg := checkClaims(body.Claims)
	if msg != "" {
		writeClaimsError(w, msg)
		return
	}
	tok, exp, err := s.issueCredentialFor(sub, time.Hour, "", scope)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	out := map[string]any{"token": tok}
	if v, ok := s.expiryValue(exp); ok {
		out["expiration_time"] = v
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) instanceJSON() map[string]any {
	state := "AVAILABLE"
	s.mu.Lock()
	if s.down == EPFailover {
		state = "FAILING_OVER"
	}
	s.mu.Unlock()
	return map[string]any{
		"name":           s.Instance,
		"uid":            "7c1f0e4a-2b3d-4c5e-8f9a-0b1c2d3e4f5a",
		"state":          state,
		"capacity":       "CU_1",
		"pg_version":     "PG_VERSION_15",
		"read_write_dns": s.Host,
		"read_only_dns":  s.ReadOnlyHost,
		"creator":        s.User.Email,
	}
}

func (s *Server) handleListInstances(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPInstances, w, r); !ok {
		return
	}
	var all []any
	if !s.opts.NoProvisioned {
		for i := range s.opts.DecoyProjects {
			all = append(all, map[string]any{"name": fmt.Sprintf("decoy-instance-%04d", i), "state": "STOPPED",
				"read_write_dns": fmt.Sprintf("instance-decoy-%04d.database.invalid", i)})
		}
		all = append(all, s.instanceJSON())
	}
	items, next := s.page(r, all)
	out := map[string]any{"database_instances": items}
	if next != "" {
		out["next_page_token"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetInstance(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPInstances, w, r); !ok {
		return
	}
	if name := r.PathValue("name"); name != s.Instance || s.opts.NoProvisioned {
		writeAPIError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Database instance '%s' does not exist.", name))
		return
	}
	writeJSON(w, http.StatusOK, s.instanceJSON())
}

func (s *Server) endpointJSON() map[string]any {
	hosts := map[string]any{"host": s.Host, "read_only_host": s.ReadOnlyHost}
	if s.PooledHost != "" {
		hosts["read_write_pooled_host"] = s.PooledHost
		hosts["read_only_pooled_host"] = s.ReadOnlyPooledHost
	}
	spec := map[string]any{"endpoint_type": "ENDPOINT_TYPE_READ_WRITE"}
	state := s.endpointState()
	if s.disabled.Load() {
		spec["disabled"] = true
		state = "IDLE"
	}
	return map[string]any{
		"name": s.Endpoint,
		"uid":  "ep-0a1b2c3d",
		"spec": spec,
		"status": map[string]any{
			"current_state": state,
			"endpoint_type": "ENDPOINT_TYPE_READ_WRITE",
			"hosts":         hosts,
		},
	}
}

func (s *Server) handleListProjects(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPEndpoints, w, r); !ok {
		return
	}
	var all []any
	for i := range s.opts.DecoyProjects {
		all = append(all, map[string]any{"name": decoyName(i)})
	}
	items, next := s.page(r, append(all, map[string]any{"name": s.endpointName().BranchName().ProjectName().String()}))
	out := map[string]any{"projects": items}
	if next != "" {
		out["next_page_token"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleListBranches(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPEndpoints, w, r); !ok {
		return
	}
	own := s.endpointName()
	if s.isDecoy(r.PathValue("p")) {
		writeJSON(w, http.StatusOK, map[string]any{"branches": []any{branchJSON(workspace.BranchName{Project: r.PathValue("p"), ID: "main"}.String(), true)}})
		return
	}
	if r.PathValue("p") != own.Project {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "project does not exist")
		return
	}
	all := []any{branchJSON(own.BranchName().String(), true)}
	s.mu.Lock()
	s.expireBranchesLocked(time.Now())
	for _, b := range s.branchesMap {
		all = append(all, s.branchJSONOf(b))
	}
	s.mu.Unlock()
	items, next := s.page(r, all)
	out := map[string]any{"branches": items}
	if next != "" {
		out["next_page_token"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleListEndpoints(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPEndpoints, w, r); !ok {
		return
	}
	own := s.endpointName()
	if s.isDecoy(r.PathValue("p")) {
		writeJSON(w, http.StatusOK, map[string]any{"endpoints": []any{decoyEndpoint(workspace.ProjectName{ID: r.PathValue("p")})}})
		return
	}
	if r.PathValue("p") == own.Project && r.PathValue("b") != own.Branch {
		if b := s.branchOf(w, r); b != nil {
			writeJSON(w, http.StatusOK, map[string]any{"endpoints": []any{s.branchEndpointJSON(b)}})
		}
		return
	}
	if pathBranch(r) != own.BranchName() {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "branch does not exist")
		return
	}
	items, next := s.page(r, []any{s.endpointJSON()})
	out := map[string]any{"endpoints": items}
	if next != "" {
		out["next_page_token"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetEndpoint(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPEndpoints, w, r); !ok {
		return
	}
	name := pathBranch(r).Endpoint(r.PathValue("e")).String()
	if name != s.Endpoint && s.branchDatabase(name) != "" {
		if b := s.branchOf(w, r); b != nil {
			writeJSON(w, http.StatusOK, s.branchEndpointJSON(b))
		}
		return
	}
	if name != s.Endpoint {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Endpoint %s does not exist", name))
		return
	}
	writeJSON(w, http.StatusOK, s.endpointJSON())
}

// branchJSON is a branch as the postgres API answers it.
func branchJSON(name string, isDefault bool) map[string]any {
	b, _ := workspace.ParseBranch(name)
	return map[string]any{"name": name, "parent": b.ProjectName().String(),
		"effective_default": isDefault,
		"status":            map[string]any{"current_state": "READY", "default": isDefault}}
}

func (s *Server) isDecoy(project string) bool {
	var i int
	if _, err := fmt.Sscanf(project, "decoy-%04d", &i); err != nil {
		return false
	}
	return i >= 0 && i < s.opts.DecoyProjects
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.api(EPSCIMMe, w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	_, isSP := s.clients[sub]
	s.mu.Unlock()
	body := map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"id":       strconv.FormatUint(uint64(len(sub))*7919, 10),
		"userName": sub,
		"active":   true,
	}
	if !isSP {
		body["displayName"] = strings.Split(sub, "@")[0]
		body["emails"] = []map[string]any{{"value": sub, "primary": true, "type": "work"}}
	} else {
		body["applicationId"] = sub
	}
	writeJSON(w, http.StatusOK, body)
}

// --- workload identity federation ---

type trustedIssuer struct {
	key      crypto.PublicKey
	audience string
	clientID string // the service principal federated tokens of this issuer act as
}

// TrustIssuer makes the token endpoint accept, in a token exchange
// (grant_type=urn:ietf:params:oauth:grant-type:token-exchange), JWTs from issuer
// signed by key (RS256 or ES256) with the given audience, and issue workspace tokens
// for the service principal clientID.
func (s *Server) TrustIssuer(issuer string, key crypto.PublicKey, audience, clientID string) {
	s.mu.Lock()
	s.trusted[issuer] = trustedIssuer{key: key, audience: audience, clientID: clientID}
	s.mu.Unlock()
}

func (s *Server) grantTokenExchange(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	if f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be urn:ietf:params:oauth:token-type:jwt")
		return
	}
	var claims jwt.RegisteredClaims
	var ti trustedIssuer
	_, err := jwt.ParseWithClaims(f.Get("subject_token"), &claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		s.mu.Lock()
		var ok bool
		ti, ok = s.trusted[iss]
		s.mu.Unlock()
		if !ok {
			return nil, errors.New("untrusted issuer")
		}
		return ti.key, nil
	}, jwt.WithValidMethods([]string{"RS256", "ES256"}), jwt.WithExpirationRequired())
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the subject token is not valid: "+err.Error())
		return
	}
	if ti.audience != "" && !containsAud(claims.Audience, ti.audience) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the subject token's audience is not accepted")
		return
	}
	if cid := f.Get("client_id"); cid != "" && cid != ti.clientID {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "no federation policy for this client_id and issuer")
		return
	}
	scope := f.Get("scope")
	if scope == "" {
		scope = "all-apis"
	}
	// The workspace token lives no longer than the subject token it came from.
	life := time.Until(claims.ExpiresAt.Time)
	s.mu.Lock()
	ttl := min(s.tokenTTL, life)
	s.mu.Unlock()
	access, err := s.sign(tokenClaims{Scope: scope, Kind: "access"}, ti.clientID, ttl)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int(ttl / time.Second), "scope": scope})
}

func containsAud(auds jwt.ClaimStrings, want string) bool {
	for _, a := range auds {
		if a == want {
			return true
		}
	}
	return false
}
