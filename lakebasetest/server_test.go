package lakebasetest_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

var srv *lakebasetest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	// -short: the workspace APIs only; the front door's tests skip themselves, and
	// ExampleNewServer (which queries the database) is skipped.
	if testing.Short() {
		if f := flag.Lookup("test.skip"); f != nil && f.Value.String() == "" {
			flag.Set("test.skip", "^Example")
		}
	}
	srv, err = lakebasetest.NewServer(lakebasetest.Options{HTTPOnly: testing.Short()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Close()
	os.Exit(code)
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type tokenResp struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
	Error        string `json:"error"`
	Desc         string `json:"error_description"`
	status       int
}

func postToken(t *testing.T, form url.Values, basicUser, basicPass string) tokenResp {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/oidc/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResp
	json.NewDecoder(resp.Body).Decode(&tr)
	tr.status = resp.StatusCode
	return tr
}

func m2mToken(t *testing.T, scope string) string {
	t.Helper()
	tr := postToken(t, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}},
		srv.ServicePrincipal.ClientID, srv.ServicePrincipal.ClientSecret)
	if tr.status != 200 || tr.AccessToken == "" {
		t.Fatalf("client_credentials: %d %s %s", tr.status, tr.Error, tr.Desc)
	}
	return tr.AccessToken
}

func apiCall(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func TestDiscovery(t *testing.T) {
	var d map[string]any
	if code := apiCall(t, "GET", "/oidc/.well-known/oauth-authorization-server", "", nil, &d); code != 200 {
		t.Fatalf("status %d", code)
	}
	if d["authorization_endpoint"] != srv.URL+"/oidc/v1/authorize" || d["token_endpoint"] != srv.URL+"/oidc/v1/token" {
		t.Fatalf("discovery = %v", d)
	}
}

func TestToken_ClientCredentialsIsSignedJWT(t *testing.T) {
	tok := m2mToken(t, "all-apis")
	var jwks struct {
		Keys []struct{ Kid, N, E string } `json:"keys"`
	}
	apiCall(t, "GET", "/oidc/v1/keys", "", nil, &jwks)
	if len(jwks.Keys) != 1 {
		t.Fatalf("jwks = %+v", jwks)
	}
	nb, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].N)
	eb, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(new(big.Int).SetBytes(eb).Int64())}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
		t.Fatalf("token does not verify with the JWKS: %v", err)
	}
	if claims["sub"] != srv.ServicePrincipal.ClientID || claims["scope"] != "all-apis" || claims["exp"] == nil {
		t.Fatalf("claims = %v", claims)
	}
}

func TestToken_Errors(t *testing.T) {
	cases := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		err        string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}}, srv.ServicePrincipal.ClientID, "nope", 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}}, "who", "x", 401, "invalid_client"},
		{"public client cannot use client_credentials", url.Values{"grant_type": {"client_credentials"}}, "databricks-cli", "", 401, "invalid_client"},
		{"no grant", url.Values{}, "", "", 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"password"}}, "", "", 400, "unsupported_grant_type"},
		{"bad code", url.Values{"grant_type": {"authorization_code"}, "client_id": {"databricks-cli"}, "code": {"x"}}, "", "", 400, "invalid_grant"},
		{"bad refresh", url.Values{"grant_type": {"refresh_token"}, "client_id": {"databricks-cli"}, "refresh_token": {"x"}}, "", "", 400, "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := postToken(t, tc.form, tc.user, tc.pass)
			if tr.status != tc.status || tr.Error != tc.err {
				t.Fatalf("got %d %q, want %d %q", tr.status, tr.Error, tc.status, tc.err)
			}
		})
	}
}

const redirect = "http://localhost:8020"

func pkcePair() (verifier, challenge string) {
	verifier = strings.Repeat("v", 10) + fmt.Sprint(time.Now().UnixNano())
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize runs the authorize endpoint in auto-approve mode and returns the code.
func authorize(t *testing.T, challenge, state string) string {
	t.Helper()
	srv.SetAutoApprove(true)
	t.Cleanup(func() { srv.SetAutoApprove(false) })
	q := url.Values{"client_id": {"databricks-cli"}, "redirect_uri": {redirect}, "response_type": {"code"},
		"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"all-apis offline_access"}}
	resp, err := noRedirect.Get(srv.URL + "/oidc/v1/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
	}
	return loc.Query().Get("code")
}

func exchange(t *testing.T, code, verifier, redirectURI string) tokenResp {
	return postToken(t, url.Values{"grant_type": {"authorization_code"}, "client_id": {"databricks-cli"},
		"code": {code}, "code_verifier": {verifier}, "redirect_uri": {redirectURI}}, "", "")
}

func TestToken_AuthorizationCodeWithPKCE(t *testing.T) {
	v, c := pkcePair()
	code := authorize(t, c, "st-1")
	tr := exchange(t, code, v, redirect)
	if tr.status != 200 || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("exchange: %+v", tr)
	}
	if again := exchange(t, code, v, redirect); again.Error != "invalid_grant" {
		t.Fatalf("a used code was accepted again: %+v", again)
	}
	var me map[string]any
	if apiCall(t, "GET", "/api/2.0/preview/scim/v2/Me", tr.AccessToken, nil, &me); me["userName"] != srv.User.Email {
		t.Fatalf("Me = %v", me)
	}
}

func TestToken_PKCEWrongVerifierFails(t *testing.T) {
	_, c := pkcePair()
	code := authorize(t, c, "st-2")
	tr := exchange(t, code, "not-the-verifier-at-all-000000000000000000", redirect)
	if tr.status != 400 || tr.Error != "invalid_grant" || !strings.Contains(tr.Desc, "PKCE") {
		t.Fatalf("wrong verifier: %+v", tr)
	}
}

func TestToken_RedirectURIMustMatch(t *testing.T) {
	v, c := pkcePair()
	code := authorize(t, c, "st-3")
	if tr := exchange(t, code, v, "http://localhost:8021"); tr.Error != "invalid_grant" {
		t.Fatalf("mismatched redirect_uri: %+v", tr)
	}
}

func userTokens(t *testing.T) tokenResp {
	v, c := pkcePair()
	tr := exchange(t, authorize(t, c, "st"), v, redirect)
	if tr.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", tr)
	}
	return tr
}

func refresh(t *testing.T, rt string) tokenResp {
	return postToken(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {"databricks-cli"}, "refresh_token": {rt}}, "", "")
}

func TestToken_RotatedRefreshReuseRevokesFamily(t *testing.T) {
	first := userTokens(t)
	second := refresh(t, first.RefreshToken)
	if second.status != 200 || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("rotation: %+v", second)
	}
	before := srv.Count("refresh.reuse_detected")
	if reuse := refresh(t, first.RefreshToken); reuse.Error != "invalid_grant" {
		t.Fatalf("reuse of a rotated token: %+v", reuse)
	}
	if srv.Count("refresh.reuse_detected") != before+1 {
		t.Fatal("reuse was not detected")
	}
	if after := refresh(t, second.RefreshToken); after.Error != "invalid_grant" {
		t.Fatalf("the family survived reuse detection: %+v", after)
	}
}

func TestToken_RefreshWithoutRotation(t *testing.T) {
	srv.SetRefreshRotation(false)
	t.Cleanup(func() { srv.SetRefreshRotation(true) })
	first := userTokens(t)
	for i := 0; i < 3; i++ {
		tr := refresh(t, first.RefreshToken)
		if tr.status != 200 || tr.RefreshToken != first.RefreshToken {
			t.Fatalf("refresh %d without rotation: %+v", i, tr)
		}
	}
}

func TestConsentPage_DenyAndApprove(t *testing.T) {
	_, c := pkcePair()
	q := url.Values{"client_id": {"databricks-cli"}, "redirect_uri": {redirect}, "response_type": {"code"},
		"state": {"s9"}, "code_challenge": {c}, "code_challenge_method": {"S256"}}
	for _, decision := range []string{"deny", "approve"} {
		resp, err := noRedirect.Get(srv.URL + "/oidc/v1/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(page, []byte(srv.User.Email)) || !bytes.Contains(page, []byte(`id="approve"`)) {
			t.Fatalf("consent page: %d %s", resp.StatusCode, page)
		}
		i := bytes.Index(page, []byte(`name="request" value="`))
		id := string(page[i+22 : i+22+32])
		resp, err = noRedirect.PostForm(srv.URL+"/oidc/v1/authorize/decision", url.Values{"request": {id}, "decision": {decision}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		switch decision {
		case "deny":
			if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "s9" {
				t.Fatalf("deny redirected to %s", loc)
			}
		case "approve":
			if loc.Query().Get("code") == "" || loc.Query().Get("state") != "s9" {
				t.Fatalf("approve redirected to %s", loc)
			}
		}
	}
}

func TestAuthorize_RefusesNonLoopbackRedirect(t *testing.T) {
	q := url.Values{"client_id": {"databricks-cli"}, "redirect_uri": {"https://evil.example.com/cb"}, "response_type": {"code"},
		"code_challenge": {"x"}, "code_challenge_method": {"S256"}}
	resp, err := noRedirect.Get(srv.URL + "/oidc/v1/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

type credResp struct {
	Token          string `json:"token"`
	ExpireTime     string `json:"expire_time"`
	ExpirationTime string `json:"expiration_time"`
	ErrorCode      string `json:"error_code"`
	Message        string `json:"message"`
}

func mintAutoscaling(t *testing.T, tok, ttl string) (credResp, int) {
	var cr credResp
	code := apiCall(t, "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": srv.Endpoint, "ttl": ttl}, &cr)
	return cr, code
}

func TestCredentialAPIs(t *testing.T) {
	tok := m2mToken(t, "all-apis")
	cr, code := mintAutoscaling(t, tok, "600s")
	exp, err := time.Parse(time.RFC3339, cr.ExpireTime)
	if code != 200 || cr.Token == "" || err != nil || time.Until(exp) < 590*time.Second || time.Until(exp) > 601*time.Second {
		t.Fatalf("autoscaling: %d %+v %v", code, cr, err)
	}
	var et credResp
	at := time.Now().Add(20 * time.Minute).Truncate(time.Second)
	if code := apiCall(t, "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": srv.Endpoint, "expire_time": at.Format(time.RFC3339)}, &et); code != 200 || et.Token == "" {
		t.Fatalf("expire_time: %d %+v", code, et)
	}
	if got, err := time.Parse(time.RFC3339, et.ExpireTime); err != nil || got.Sub(at).Abs() > 2*time.Second {
		t.Fatalf("expire_time %v answered %q", at, et.ExpireTime)
	}
	var pr credResp
	code = apiCall(t, "POST", "/api/2.0/database/credentials", tok, map[string]any{"request_id": "r1", "instance_names": []string{srv.Instance}}, &pr)
	if _, err := time.Parse(time.RFC3339, pr.ExpirationTime); code != 200 || pr.Token == "" || err != nil {
		t.Fatalf("provisioned: %d %+v", code, pr)
	}

	checks := []struct {
		name, method, path, token string
		body                      any
		status                    int
		errCode                   string
	}{
		{"ttl too short", "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": srv.Endpoint, "ttl": "60s"}, 400, "INVALID_PARAMETER_VALUE"},
		{"ttl too long", "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": srv.Endpoint, "ttl": "7200s"}, 400, "INVALID_PARAMETER_VALUE"},
		{"expire_time too near", "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": srv.Endpoint, "expire_time": time.Now().Add(time.Minute).Format(time.RFC3339)}, 400, "INVALID_PARAMETER_VALUE"},
		{"expire_time too far", "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": srv.Endpoint, "expire_time": time.Now().Add(2 * time.Hour).Format(time.RFC3339)}, 400, "INVALID_PARAMETER_VALUE"},
		{"expire_time with ttl", "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": srv.Endpoint, "ttl": "600s", "expire_time": time.Now().Add(20 * time.Minute).Format(time.RFC3339)}, 400, "INVALID_PARAMETER_VALUE"},
		{"unknown endpoint", "POST", "/api/2.0/postgres/credentials", tok, map[string]string{"endpoint": "projects/x/branches/y/endpoints/z"}, 404, "NOT_FOUND"},
		{"unknown instance", "POST", "/api/2.0/database/credentials", tok, map[string]any{"request_id": "r", "instance_names": []string{"nope"}}, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"no request_id", "POST", "/api/2.0/database/credentials", tok, map[string]any{"instance_names": []string{srv.Instance}}, 400, "INVALID_PARAMETER_VALUE"},
		{"no token", "POST", "/api/2.0/postgres/credentials", "", map[string]string{"endpoint": srv.Endpoint}, 401, "UNAUTHENTICATED"},
		{"garbage token", "POST", "/api/2.0/postgres/credentials", "abc", map[string]string{"endpoint": srv.Endpoint}, 403, "PERMISSION_DENIED"},
		{"wrong scope", "POST", "/api/2.0/postgres/credentials", m2mToken(t, "sql"), map[string]string{"endpoint": srv.Endpoint}, 403, "PERMISSION_DENIED"},
		{"credential is not a workspace token", "GET", "/api/2.0/preview/scim/v2/Me", cr.Token, nil, 403, "PERMISSION_DENIED"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			var e credResp
			if code := apiCall(t, c.method, c.path, c.token, c.body, &e); code != c.status || e.ErrorCode != c.errCode {
				t.Fatalf("got %d %q (%s), want %d %q", code, e.ErrorCode, e.Message, c.status, c.errCode)
			}
		})
	}
}

func TestLookupAndListing(t *testing.T) {
	tok := m2mToken(t, "all-apis")
	var inst map[string]any
	if code := apiCall(t, "GET", "/api/2.0/database/instances/"+srv.Instance, tok, nil, &inst); code != 200 || inst["read_write_dns"] != srv.Host || inst["read_write_pooled_dns"] != nil {
		t.Fatalf("instance: %d %v", code, inst)
	}
	var ep struct {
		Status struct {
			Hosts map[string]string `json:"hosts"`
		} `json:"status"`
	}
	if code := apiCall(t, "GET", "/api/2.0/postgres/"+srv.Endpoint, tok, nil, &ep); code != 200 || ep.Status.Hosts["host"] != srv.Host || ep.Status.Hosts["read_write_pooled_host"] != "" || ep.Status.Hosts["pooled_host"] != "" {
		// (no pooled host without Options.Pooler: nothing would serve it)
		t.Fatalf("endpoint: %d %+v", code, ep)
	}
	var list struct {
		Instances []map[string]any `json:"database_instances"`
	}
	if apiCall(t, "GET", "/api/2.0/database/instances", tok, nil, &list); len(list.Instances) != 1 {
		t.Fatalf("instances: %+v", list)
	}
	var eps struct {
		Endpoints []map[string]any `json:"endpoints"`
	}
	parts := strings.Split(srv.Endpoint, "/")
	if apiCall(t, "GET", "/api/2.0/postgres/"+strings.Join(parts[:4], "/")+"/endpoints", tok, nil, &eps); len(eps.Endpoints) != 1 {
		t.Fatalf("endpoints: %+v", eps)
	}
	if code := apiCall(t, "GET", "/api/2.0/database/instances/nope", tok, nil, nil); code != 404 {
		t.Fatalf("unknown instance: %d", code)
	}
	var me map[string]any
	if apiCall(t, "GET", "/api/2.0/preview/scim/v2/Me", tok, nil, &me); me["userName"] != srv.ServicePrincipal.ClientID {
		t.Fatalf("Me for the service principal = %v", me)
	}
}

func TestKnobs_OutageErrorRateLatencyCounters(t *testing.T) {
	testenv.NeedPostgres(t)
	srv.ResetCounts()
	srv.SetOutage(true)
	tr := postToken(t, url.Values{"grant_type": {"client_credentials"}}, srv.ServicePrincipal.ClientID, srv.ServicePrincipal.ClientSecret)
	srv.SetOutage(false)
	if tr.status != 503 {
		t.Fatalf("outage: %d", tr.status)
	}
	srv.SetErrorRate(lakebasetest.EPToken, 1)
	tr = postToken(t, url.Values{"grant_type": {"client_credentials"}}, srv.ServicePrincipal.ClientID, srv.ServicePrincipal.ClientSecret)
	srv.SetErrorRate(lakebasetest.EPToken, 0)
	if tr.status != 503 {
		t.Fatalf("error rate 1: %d", tr.status)
	}
	srv.SetLatency(lakebasetest.EPToken, 200*time.Millisecond)
	start := time.Now()
	m2mToken(t, "all-apis")
	srv.SetLatency(lakebasetest.EPToken, 0)
	if time.Since(start) < 200*time.Millisecond {
		t.Fatalf("latency not applied: %v", time.Since(start))
	}
	if got := srv.Count(lakebasetest.EPToken); got != 3 {
		t.Fatalf("token counter = %d, want 3", got)
	}
	if got := srv.Count("token:client_credentials"); got != 1 {
		t.Fatalf("per-grant counter = %d, want 1 (the two refused by the gate are not counted per grant)", got)
	}
}

// --- the Postgres front door ---

func pgConnect(ctx context.Context, user, password, sslmode string) (*pgconn.PgConn, error) {
	cs := fmt.Sprintf("host=%s port=%d dbname=%s user='%s' password='%s' sslmode=%s sslrootcert=%s",
		srv.Host, srv.Port, srv.Database, user, password, sslmode, srv.CAFile)
	return pgconn.Connect(ctx, cs)
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestFrontDoor_RefusesPlaintext(t *testing.T) {
	testenv.NeedPostgres(t)
	cred, _ := mintAutoscaling(t, m2mToken(t, "all-apis"), "")
	_, err := pgConnect(context.Background(), srv.ServicePrincipal.ClientID, cred.Token, "disable")
	if sqlState(err) != "28000" || !strings.Contains(err.Error(), "no encryption") {
		t.Fatalf("plaintext login: %v", err)
	}
}

func TestFrontDoor_AcceptsFreshCredentialWithVerifyFull(t *testing.T) {
	testenv.NeedPostgres(t)
	cred, _ := mintAutoscaling(t, m2mToken(t, "all-apis"), "")
	pc, err := pgConnect(context.Background(), srv.ServicePrincipal.ClientID, cred.Token, "verify-full")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	res := pc.ExecParams(context.Background(), "SELECT current_user", nil, nil, nil, nil).Read()
	if res.Err != nil || string(res.Rows[0][0]) != srv.ServicePrincipal.ClientID {
		t.Fatalf("current_user: %v %q", res.Err, res.Rows)
	}
}

func TestFrontDoor_RefusesExpiredRevokedForeignAndWorkspaceTokens(t *testing.T) {
	testenv.NeedPostgres(t)
	ctx := context.Background()
	tok := m2mToken(t, "all-apis")
	short, _ := mintAutoscaling(t, tok, "")
	revoked, _ := mintAutoscaling(t, tok, "")
	other, _ := mintAutoscaling(t, tok, "")
	srv.Revoke(revoked.Token)

	// An open session survives its credential's expiry.
	alive, err := pgConnect(ctx, srv.ServicePrincipal.ClientID, short.Token, "require")
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close(ctx)
	// The credential expires: the emulator's clock moves past its hour (and back
	// afterwards).
	srv.AdvanceClock(61 * time.Minute)
	defer srv.AdvanceClock(-61 * time.Minute)

	for name, login := range map[string][2]string{
		"expired":         {srv.ServicePrincipal.ClientID, short.Token},
		"revoked":         {srv.ServicePrincipal.ClientID, revoked.Token},
		"other identity":  {srv.User.Email, other.Token},
		"workspace token": {srv.ServicePrincipal.ClientID, tok},
		"garbage":         {srv.ServicePrincipal.ClientID, "x"},
	} {
		_, err := pgConnect(ctx, login[0], login[1], "require")
		if sqlState(err) != "28P01" {
			t.Errorf("%s: %v, want 28P01", name, err)
		}
	}
	if res := alive.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read(); res.Err != nil {
		t.Fatalf("the open session died at credential expiry: %v", res.Err)
	}
}

func TestFrontDoor_NativePasswordRoleAndDropSessions(t *testing.T) {
	testenv.NeedPostgres(t)
	ctx := context.Background()
	if err := srv.AddPasswordRole("native_app", "n4tive;pw"); err != nil {
		t.Fatal(err)
	}
	pc, err := pgConnect(ctx, "native_app", "n4tive;pw", "verify-full")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgConnect(ctx, "native_app", "wrong", "require"); sqlState(err) != "28P01" {
		t.Fatalf("wrong native password: %v", err)
	}
	srv.DropSessions()
	if res := pc.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read(); res.Err == nil {
		t.Fatal("a session survived DropSessions")
	}
}

func TestFrontDoor_RoleMustExist(t *testing.T) {
	testenv.NeedPostgres(t)
	if err := srv.AddServicePrincipal("no-role-sp", "sec"); err != nil {
		t.Fatal(err)
	}
	if err := srv.DropRole("no-role-sp"); err != nil {
		t.Fatal(err)
	}
	tr := postToken(t, url.Values{"grant_type": {"client_credentials"}}, "no-role-sp", "sec")
	cred, _ := mintAutoscaling(t, tr.AccessToken, "")
	_, err := pgConnect(context.Background(), "no-role-sp", cred.Token, "require")
	// Exactly the service's answer: as if the password were wrong.
	if sqlState(err) != "28P01" || !strings.Contains(err.Error(), "password authentication failed for user 'no-role-sp'") {
		t.Fatalf("login without a role: %v", err)
	}
}

func TestFrontDoor_CancelRequestReachesPostgres(t *testing.T) {
	testenv.NeedPostgres(t)
	cred, _ := mintAutoscaling(t, m2mToken(t, "all-apis"), "")
	pc, err := pgConnect(context.Background(), srv.ServicePrincipal.ClientID, cred.Token, "require")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := pc.ExecParams(ctx, "SELECT pg_sleep(20)", nil, nil, nil, nil).Read()
	if res.Err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancel did not stop the query: %v after %v", res.Err, time.Since(start))
	}
}

func TestFrontDoor_AutoCreateRolesOnFirstLogin(t *testing.T) {
	testenv.NeedPostgres(t)
	e := lakebasetest.Start(t, lakebasetest.Options{AutoCreateRoles: true})
	if err := e.AddServicePrincipal("auto-role-sp", "auto-secret"); err != nil {
		t.Fatal(err)
	}
	if err := e.DropRole("auto-role-sp"); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", e.URL+"/oidc/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("auto-role-sp", "auto-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr tokenResp
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	body, _ := json.Marshal(map[string]string{"endpoint": e.Endpoint})
	req, _ = http.NewRequest("POST", e.URL+"/api/2.0/postgres/credentials", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cr credResp
	json.NewDecoder(resp.Body).Decode(&cr)
	resp.Body.Close()
	pc, err := pgconn.Connect(context.Background(), fmt.Sprintf("host=%s port=%d dbname=%s user=auto-role-sp password=%s sslmode=verify-full sslrootcert=%s",
		e.Host, e.Port, e.Database, cr.Token, e.CAFile))
	if err != nil {
		t.Fatalf("first login with AutoCreateRoles: %v", err)
	}
	pc.Close(context.Background())
}

// Long-running operations live on their own, as on the service: the Databricks SDK's
// DeleteBranch(...).Wait(ctx) GETs the operation named in the DELETE answer (even
// one that says done), which must still be there after the branch is gone; a
// creation's operation is polled until done with the branch in its response.
func TestOperations_OutliveTheirBranch(t *testing.T) {
	testenv.NeedPostgres(t)
	tok := m2mToken(t, "all-apis")
	var op struct {
		Name     string         `json:"name"`
		Done     bool           `json:"done"`
		Response map[string]any `json:"response"`
		Error    map[string]any `json:"error"`
	}
	if code := apiCall(t, http.MethodPost, "/api/2.0/postgres/projects/lakebase/branches?branch_id=lro-test", tok, map[string]any{"spec": map[string]any{}}, &op); code != http.StatusOK || op.Name == "" {
		t.Fatalf("create: %d %+v", code, op)
	}
	createOp := op.Name
	deadline := time.Now().Add(2 * time.Minute)
	for !op.Done {
		if time.Now().After(deadline) {
			t.Fatal("the creation never finished")
		}
		time.Sleep(50 * time.Millisecond)
		if code := apiCall(t, http.MethodGet, "/api/2.0/postgres/"+createOp, tok, nil, &op); code != http.StatusOK {
			t.Fatalf("GET %s: %d", createOp, code)
		}
	}
	if op.Error != nil || op.Response["name"] != "projects/lakebase/branches/lro-test" {
		t.Fatalf("the creation's operation: %+v", op)
	}
	op.Name, op.Done = "", false
	if code := apiCall(t, http.MethodDelete, "/api/2.0/postgres/projects/lakebase/branches/lro-test", tok, nil, &op); code != http.StatusOK || op.Name == "" {
		t.Fatalf("delete: %d %+v", code, op)
	}
	deleteOp := op.Name
	op.Done = false
	if code := apiCall(t, http.MethodGet, "/api/2.0/postgres/"+deleteOp, tok, nil, &op); code != http.StatusOK || !op.Done {
		t.Fatalf("GET %s after the delete: %d %+v", deleteOp, code, op)
	}
	op.Done = false
	if code := apiCall(t, http.MethodGet, "/api/2.0/postgres/"+createOp, tok, nil, &op); code != http.StatusOK || !op.Done {
		t.Fatalf("the creation's operation after the delete: %d %+v", code, op)
	}
}
