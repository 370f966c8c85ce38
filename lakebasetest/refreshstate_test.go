package lakebasetest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// personLogin logs the emulator's person in through the PKCE flow (consent
// approved at once) and returns the refresh token.
func personLogin(t *testing.T, s *lakebasetest.Server) string {
	t.Helper()
	const verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	redirect := "http://localhost:1/callback"
	q := url.Values{"client_id": {"databricks-cli"}, "redirect_uri": {redirect}, "response_type": {"code"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"scope": {"all-apis offline_access"}, "state": {"st"}}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(s.URL + "/oidc/v1/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d, no code", resp.StatusCode)
	}
	rt, code := tokenGrant(t, s, url.Values{"grant_type": {"authorization_code"}, "client_id": {"databricks-cli"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "code_verifier": {verifier}})
	if rt == "" {
		t.Fatalf("the code exchange: %s", code)
	}
	return rt
}

// refresh spends rt and returns the new refresh token, or "" and the OAuth error.
func spendRefresh(t *testing.T, s *lakebasetest.Server, rt string) (string, string) {
	t.Helper()
	return tokenGrant(t, s, url.Values{"grant_type": {"refresh_token"}, "client_id": {"databricks-cli"}, "refresh_token": {rt}})
}

func tokenGrant(t *testing.T, s *lakebasetest.Server, form url.Values) (refresh, oauthErr string) {
	t.Helper()
	resp, err := http.PostForm(s.URL+"/oidc/v1/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Refresh string `json:"refresh_token"`
		Error   string `json:"error"`
		Desc    string `json:"error_description"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.Refresh == "" {
		return "", out.Error + ": " + out.Desc
	}
	return out.Refresh, ""
}

// savedTokens is the refresh tokens of dir's state.json, as it is on disk now.
func savedTokens(t *testing.T, dir string) (tokens map[string]struct {
	Family string `json:"family"`
	Used   bool   `json:"used"`
}, revoked []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		RefreshTokens map[string]struct {
			Family string `json:"family"`
			Used   bool   `json:"used"`
		} `json:"refresh_tokens"`
		RevokedFamilies []string `json:"revoked_families"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.RefreshTokens, st.RevokedFamilies
}

func restartOn(t *testing.T, s *lakebasetest.Server, dir string) *lakebasetest.Server {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// What an attacker controls here: a person's refresh token (stolen), replayed
// after the emulator restarted on its data directory. A token revoked before the
// restart stays refused; a token rotated before it, replayed after it, is reuse
// (its family, the person's current token too, is revoked).
func TestDataDir_RefreshTokensRevokedOrRotatedBeforeARestartStayRefused(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	revoked := personLogin(t, s)
	s.Revoke(revoked)
	stolen := personLogin(t, s)
	current, e := spendRefresh(t, s, stolen)
	if current == "" {
		t.Fatalf("a refresh: %s", e)
	}
	s = restartOn(t, s, dir)
	if got, e := spendRefresh(t, s, revoked); got != "" || !strings.HasPrefix(e, "invalid_grant") {
		t.Fatalf("a token revoked before the restart, after it: %t, %s", got != "", e)
	}
	if got, e := spendRefresh(t, s, stolen); got != "" || !strings.Contains(e, "reuse") {
		t.Fatalf("a token rotated before the restart, replayed after it: %t, %s; want reuse detected", got != "", e)
	}
	if got, e := spendRefresh(t, s, current); got != "" || !strings.HasPrefix(e, "invalid_grant") {
		t.Fatalf("the family's current token after a reuse: %t, %s; want refused", got != "", e)
	}
}

// A killed emulator (no Close) keeps what it answered: a refresh token is on
// disk, and the one it replaces marked used, before the answer is sent; a
// revocation is on disk when Revoke returns. Otherwise a token rotated in the
// last second before the kill would work again after the restart (reuse not
// caught) and the person's new one would not, and a revoked family would be
// valid again.
func TestDataDir_ARotationOrRevocationIsOnDiskBeforeItIsAnswered(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rt1 := personLogin(t, s)
	rt2, e := spendRefresh(t, s, rt1)
	if rt2 == "" {
		t.Fatalf("a refresh: %s", e)
	}
	tokens, _ := savedTokens(t, dir)
	spent, kept := tokens[rt1]
	if (kept && !spent.Used) || tokens[rt2].Family == "" || tokens[rt2].Used {
		t.Fatalf("on disk when the refresh was answered: the spent token unspent %t, the new one kept %t", kept && !spent.Used, tokens[rt2].Family != "")
	}
	s.Revoke(rt2)
	_, families := savedTokens(t, dir)
	found := false
	for _, f := range families {
		found = found || f == tokens[rt2].Family
	}
	if !found {
		t.Fatal("a revoked family is not on disk when Revoke returns")
	}
}

// The refresh tokens a restarted emulator took from its data directory are among
// IssuedSecrets, which tests use to check that none leaks into logs or errors.
func TestDataDir_IssuedSecretsNameTheRefreshTokensKeptAcrossARestart(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rt := personLogin(t, s)
	s = restartOn(t, s, dir)
	for _, sec := range s.IssuedSecrets() {
		if sec == rt {
			return
		}
	}
	t.Fatal("IssuedSecrets after a restart does not name the refresh token kept")
}

// What an attacker controls here: how often a person's login is refreshed (each
// refresh rotates the token). The data directory keeps one token a login, not
// one a refresh, and still catches the reuse of the first token of a login
// rotated many times, after a restart: the login's family is revoked.
func TestDataDir_RefreshesDoNotGrowTheStateAndEveryReuseIsStillCaught(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	first := personLogin(t, s)
	rt, e := spendRefresh(t, s, first)
	if rt == "" {
		t.Fatalf("a refresh: %s", e)
	}
	stateSize := func() int64 {
		fi, err := os.Stat(filepath.Join(dir, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	size := stateSize()
	for i := range 300 {
		if rt, e = spendRefresh(t, s, rt); rt == "" {
			t.Fatalf("refresh %d: %s", i, e)
		}
	}
	if tokens, _ := savedTokens(t, dir); len(tokens) != 1 || stateSize() != size {
		t.Fatalf("after 300 more refreshes: %d refresh tokens kept, state.json %d bytes (%d after the first)", len(tokens), stateSize(), size)
	}
	s = restartOn(t, s, dir)
	if got, e := spendRefresh(t, s, first); got != "" || !strings.Contains(e, "reuse") {
		t.Fatalf("the login's first token, replayed after 301 rotations and a restart: %t, %s; want reuse detected", got != "", e)
	}
	if got, e := spendRefresh(t, s, rt); got != "" || !strings.HasPrefix(e, "invalid_grant") {
		t.Fatalf("the login's current token after the reuse: %t, %s; want refused", got != "", e)
	}
	if tokens, families := savedTokens(t, dir); len(tokens) != 0 || len(families) != 1 {
		t.Fatalf("after the reuse: %d refresh tokens kept, %d families revoked; want none kept, one revoked", len(tokens), len(families))
	}
}

// A data directory written before refresh tokens named their login kept every
// spent token (used): the reuse of one of them after the upgrade still revokes
// its login.
func TestDataDir_ASpentTokenAnOlderDirectoryKeptIsStillCaught(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rt := personLogin(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "state.json")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	tokens := st["refresh_tokens"].(map[string]any)
	live := tokens[rt].(map[string]any)
	const old = "doau0123456789abcdef0123456789abcdef0123456789abcdef" // the older form: 48 hex digits
	tokens[old] = map[string]any{"family": live["family"], "client_id": live["client_id"], "subject": live["subject"], "scope": live["scope"], "used": true}
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if got, e := spendRefresh(t, s2, old); got != "" || !strings.Contains(e, "reuse") {
		t.Fatalf("a spent token of the older form: %t, %s; want reuse detected", got != "", e)
	}
	if got, e := spendRefresh(t, s2, rt); got != "" || !strings.HasPrefix(e, "invalid_grant") {
		t.Fatalf("the login's current token after the reuse: %t, %s; want refused", got != "", e)
	}
}
