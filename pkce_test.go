package lakebase_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/webdriver"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/oauth"
)

// authURLRow is the result of EXEC GetOAuthAuthorizationURL.
type authURLRow struct{ URL, State, Verifier string }

func checkAuthURL(t *testing.T, r authURLRow, callback string) {
	t.Helper()
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/oidc/v1/authorize" || q.Get("response_type") != "code" || q.Get("client_id") != "databricks-cli" ||
		q.Get("redirect_uri") != callback || q.Get("scope") != "all-apis offline_access" || q.Get("state") != r.State ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") != oauth.S256Challenge(r.Verifier) {
		t.Fatalf("authorization URL %s (state %s)", r.URL, r.State)
	}
}

// TestProcedures_NeedNoTokenAndNoDatabase calls GetOAuthAuthorizationURL in every
// way database/sql allows while the Postgres address has nothing listening.
func TestProcedures_NeedNoTokenAndNoDatabase(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthPKCEDSN("Server=127.0.0.1", "Port=1", "OAuthSettingsLocation=memory://noDB"))
	ctx := context.Background()
	const q = "EXEC GetOAuthAuthorizationURL CallbackUrl='http://localhost:8020'"
	scan := func(row interface{ Scan(...any) error }) authURLRow {
		var r authURLRow
		if err := row.Scan(&r.URL, &r.State, &r.Verifier); err != nil {
			t.Fatal(err)
		}
		return r
	}
	checkAuthURL(t, scan(db.QueryRow(q)), "http://localhost:8020")

	rows, err := db.Query("EXECUTE GetOAuthAuthorizationURL CallbackUrl=?, State=@st", "http://127.0.0.1:9999/cb", sql.Named("st", "my-state"))
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	if strings.Join(cols, ",") != "URL,State,PKCEVerifier" || !rows.Next() {
		t.Fatalf("columns %v", cols)
	}
	r := scan(rows)
	rows.Close()
	if r.State != "my-state" {
		t.Fatalf("state %q", r.State)
	}
	checkAuthURL(t, r, "http://127.0.0.1:9999/cb")

	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
	st, err := db.Prepare("EXEC GetOAuthAuthorizationURL State=$1")
	if err != nil {
		t.Fatal(err)
	}
	if r := scan(st.QueryRow("prepared")); r.State != "prepared" {
		t.Fatalf("prepared: %+v", r)
	}
	st.Close()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkAuthURL(t, scan(tx.QueryRow(q)), "http://localhost:8020")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// A real statement on the same pool fails: there is no database.
	if err := db.Ping(); err == nil {
		t.Fatal("Ping succeeded with no database")
	}
	// Bad calls are clear errors naming the input.
	for q, want := range map[string]string{
		"EXEC GetOAuthAuthorizationURL Nope='x'":                       "input Nope is not an input",
		"EXEC RefreshOAuthAccessToken":                                 "input OAuthRefreshToken is required",
		"EXEC GetOAuthAccessToken":                                     "input Verifier is required",
		"EXEC GetOAuthAccessToken Verifier='c'":                        "input State is required",
		"EXEC GetOAuthAccessToken AuthMode='TV'":                       "input AuthMode must be WEB or APP",
		"EXEC GetOAuthAccessToken Verifier='c', State='unknown-state'": "names no pending authorization",
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", q, err, want)
		}
	}
}

func TestProcedures_WorkWhilePostgresIsStopped(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	if err := e.StopPostgres(); err != nil {
		t.Fatal(err)
	}
	db, _ := newDB(t, e.OAuthPKCEDSN("OAuthSettingsLocation=memory://stopped"))
	var r authURLRow
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	checkAuthURL(t, r, "http://localhost:8020")
}

// approveByHTTP follows an authorization URL in auto-approve mode and returns the
// callback's query.
func approveByHTTP(t *testing.T, authURL string) url.Values {
	t.Helper()
	emu.SetAutoApprove(true)
	defer emu.SetAutoApprove(false)
	resp, err := noRedirectClient.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d %v", resp.StatusCode, err)
	}
	return loc.Query()
}

func TestProcedures_WebFlowAcrossConnectorsThroughTheStore(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file)
	a, _ := newDB(t, dsn)
	var r authURLRow
	if err := a.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	cb := approveByHTTP(t, r.URL)

	b, _ := newDB(t, dsn) // another connector (as another process would be), same store
	var access, refresh sql.NullString
	var expires int64
	err := b.QueryRow("EXEC GetOAuthAccessToken Verifier=?, State=?", cb.Get("code"), cb.Get("state")).Scan(&access, &refresh, &expires)
	if err != nil {
		t.Fatal(err)
	}
	if access.String == "" || refresh.String == "" || expires < 3000 || expires > 3600 {
		t.Fatalf("tokens: access %v refresh %v expires %d", access.Valid, refresh.Valid, expires)
	}
	if u := currentUser(t, b); u != emu.User.Email {
		t.Fatalf("current_user = %q", u)
	}
	// The state is single-use.
	_, err = b.Exec("EXEC GetOAuthAccessToken Verifier=?, State=?", cb.Get("code"), cb.Get("state"))
	if err == nil || !strings.Contains(err.Error(), "no pending authorization") {
		t.Fatalf("reused state: %v", err)
	}
	// A third connector on the same file logs in from the store.
	c, _ := newDB(t, dsn)
	if u := currentUser(t, c); u != emu.User.Email {
		t.Fatalf("from the store: current_user = %q", u)
	}
}

func TestProcedures_WrongVerifierAndInvalidGrantAreRefused(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthPKCEDSN("OAuthSettingsLocation=memory://wrong"))
	var r authURLRow
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	cb := approveByHTTP(t, r.URL)
	_, err := db.Exec("EXEC GetOAuthAccessToken Verifier=?, PKCEVerifier='not-the-right-verifier-0000000000000000000000'", cb.Get("code"))
	var te *lakebase.TokenError
	if !errors.As(err, &te) || te.Code != "invalid_grant" {
		t.Fatalf("wrong PKCE verifier: %v", err)
	}
	_, err = db.Exec("EXEC RefreshOAuthAccessToken OAuthRefreshToken='not-a-refresh-token'")
	if !errors.As(err, &te) || te.Code != "invalid_grant" || !errors.Is(err, lakebase.ErrReloginRequired) {
		t.Fatalf("bad refresh token: %v", err)
	}
	if strings.Contains(err.Error(), "not-a-refresh-token") {
		t.Fatal("the error shows the refresh token")
	}
}

func TestProcedures_RefreshOAuthAccessTokenRotates(t *testing.T) {
	needServers(t)
	rt := userRefreshToken(t)
	db, _ := newDB(t, emu.OAuthPKCEDSN("OAuthSettingsLocation=memory://refresh-proc"))
	var access, refresh string
	var exp int64
	if err := db.QueryRow("EXEC RefreshOAuthAccessToken OAuthRefreshToken=?", rt).Scan(&access, &refresh, &exp); err != nil {
		t.Fatal(err)
	}
	if access == "" || refresh == "" || refresh == rt {
		t.Fatal("no rotated refresh token")
	}
}

func TestProcedures_PostgresExecuteAndCallStillReachPostgres(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthClientDSN())
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PREPARE myplan(int) AS SELECT $1 + 1"); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := conn.QueryRowContext(ctx, "EXECUTE myplan(41)").Scan(&v); err != nil || v != 42 {
		t.Fatalf("EXECUTE myplan: %d %v", v, err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS call_t (v int);
		CREATE OR REPLACE PROCEDURE GetOAuthAccessToken_p(x int) LANGUAGE sql AS $$ INSERT INTO call_t VALUES (x) $$`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "DROP TABLE call_t; DROP PROCEDURE GetOAuthAccessToken_p(int)")
	if _, err := conn.ExecContext(ctx, "CALL GetOAuthAccessToken_p(7)"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT v FROM call_t").Scan(&v); err != nil || v != 7 {
		t.Fatalf("CALL: %d %v", v, err)
	}
}

func freeLoopbackPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestOAuthPKCE_DesktopFlowInHeadlessChromium: GETANDREFRESH with no token opens the
// "system browser" (headless Chromium here), which clicks Approve on the consent page.
func TestOAuthPKCE_DesktopFlowInHeadlessChromium(t *testing.T) {
	needServers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := webdriver.StartForTest(ctx, t)
	opened := make(chan string, 1)
	open := func(u string) error {
		opened <- u
		if err := b.Navigate(ctx, u); err != nil {
			return err
		}
		return b.Click(ctx, "#approve")
	}
	callback := fmt.Sprintf("http://localhost:%d", freeLoopbackPort(t))
	file := filepath.Join(t.TempDir(), "settings.json")
	var stderr strings.Builder
	db, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=GETANDREFRESH", "CallbackURL="+callback, "OAuthSettingsLocation="+file, "Timeout=60"),
		lakebase.WithBrowserOpener(open), lakebase.WithStderr(&stderr))
	if u := currentUser(t, db); u != emu.User.Email {
		t.Fatalf("current_user = %q", u)
	}
	if title, _ := b.Text(ctx, "#title"); title != "Login complete" {
		t.Fatalf("the browser shows %q", title)
	}
	u := <-opened
	if !strings.Contains(stderr.String(), u) {
		t.Fatal("the URL was not printed on stderr")
	}
	// The login is stored: a new connector needs no browser.
	db2, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=GETANDREFRESH", "CallbackURL="+callback, "OAuthSettingsLocation="+file),
		lakebase.WithBrowserOpener(func(string) error { t.Error("the browser was opened again"); return nil }))
	currentUser(t, db2)
}

// freshMemoryStore names a memory store no other test, and no other run of this
// test (go test -count=N), has used: a memory:// store lives as long as the
// process, so a fixed name would hand a later run the login of an earlier one.
func freshMemoryStore(t *testing.T) string {
	return fmt.Sprintf("memory://%s-%d", t.Name(), memoryStores.Add(1))
}

var memoryStores atomic.Int64

// A forged callback (wrong state) is refused with an error page and does not end
// the login: the real callback that follows completes it. Each run starts with
// empty stores, so the browser login runs every time (-count=N).
func TestOAuthPKCE_DesktopFlowRefusesWrongStateAndTimesOut(t *testing.T) {
	needServers(t)
	callback := fmt.Sprintf("http://localhost:%d", freeLoopbackPort(t))
	forged := make(chan int, 1)
	var opened atomic.Bool
	forgeThenApprove := func(u string) error {
		opened.Store(true)
		go func() {
			resp, err := http.Get(callback + "/?code=forged&state=not-the-state")
			if err != nil {
				forged <- 0
				return
			}
			resp.Body.Close()
			forged <- resp.StatusCode
			emu.SetAutoApprove(true)
			defer emu.SetAutoApprove(false)
			if resp, err := http.Get(u); err == nil { // the person approves
				resp.Body.Close()
			}
		}()
		return nil
	}
	db, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=GETANDREFRESH", "CallbackURL="+callback, "OAuthSettingsLocation="+freshMemoryStore(t)),
		lakebase.WithBrowserOpener(forgeThenApprove), lakebase.WithStderr(&strings.Builder{}))
	if err := db.Ping(); err != nil {
		t.Fatalf("login after a forged callback: %v", err)
	}
	if !opened.Load() {
		t.Fatal("the login needed no browser: its store already held a login")
	}
	if code := <-forged; code != http.StatusBadRequest {
		t.Fatalf("the forged callback got HTTP %d, want 400", code)
	}
	db2, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=GETANDREFRESH", "CallbackURL="+callback, "OAuthSettingsLocation="+freshMemoryStore(t), "Timeout=1"),
		lakebase.WithBrowserOpener(func(string) error { return nil }), lakebase.WithStderr(&strings.Builder{}))
	start := time.Now()
	if err := db2.Ping(); err == nil || !strings.Contains(err.Error(), "within Timeout=1s") {
		t.Fatalf("no browser: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Timeout=1 took %v", time.Since(start))
	}
}

func TestProcedures_AuthModeAPPRunsTheDesktopFlow(t *testing.T) {
	needServers(t)
	callback := fmt.Sprintf("http://127.0.0.1:%d/callback", freeLoopbackPort(t))
	follow := func(u string) error {
		emu.SetAutoApprove(true)
		go func() {
			defer emu.SetAutoApprove(false)
			resp, err := http.Get(u) // follows the redirect to the callback
			if err == nil {
				resp.Body.Close()
			}
		}()
		return nil
	}
	db, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "CallbackURL="+callback, "OAuthSettingsLocation=memory://app"),
		lakebase.WithBrowserOpener(follow), lakebase.WithStderr(&strings.Builder{}))
	var access, refresh string
	var exp int64
	if err := db.QueryRow("EXEC GetOAuthAccessToken AuthMode='APP'").Scan(&access, &refresh, &exp); err != nil {
		t.Fatal(err)
	}
	if u := currentUser(t, db); u != emu.User.Email {
		t.Fatalf("current_user = %q", u)
	}
}

// TestOAuthPKCE_HeadlessAndTransferFlows: on a headless server, the authorization URL
// is made there (the verifier stays in its settings file), opened on another machine,
// and the code comes back as OAuthVerifier; then the settings file is copied to a
// third machine and used with REFRESH.
func TestOAuthPKCE_HeadlessAndTransferFlows(t *testing.T) {
	needServers(t)
	dir := t.TempDir()
	server := filepath.Join(dir, "server", "settings.json")
	dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+server)
	db, _ := newDB(t, dsn)
	var r authURLRow
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	code := approveByHTTP(t, r.URL).Get("code") // "on another machine"

	emu.ResetCounts()
	headless, _ := newDB(t, dsn+";OAuthVerifier="+code)
	if u := currentUser(t, headless); u != emu.User.Email {
		t.Fatalf("headless: current_user = %q", u)
	}
	if n := emu.Count("token:authorization_code"); n != 1 {
		t.Fatalf("code exchanges = %d", n)
	}
	// The verifier is exchanged once; later connectors with the same string refresh from the store.
	again, _ := newDB(t, dsn+";OAuthVerifier="+code)
	currentUser(t, again)
	if n := emu.Count("token:authorization_code"); n != 1 {
		t.Fatalf("the code was exchanged again (%d)", n)
	}

	// Transfer: copy the settings file to another machine.
	data, err := os.ReadFile(server)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "laptop", "OAuthSettings.txt")
	os.MkdirAll(filepath.Dir(other), 0o700)
	if err := os.WriteFile(other, data, 0o600); err != nil {
		t.Fatal(err)
	}
	moved, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+other))
	if u := currentUser(t, moved); u != emu.User.Email {
		t.Fatalf("transfer: current_user = %q", u)
	}
}

// A browser login takes as long as the person does; it must not hold the settings
// file's lock meanwhile: another connector on the same file starts a login at once.
func TestOAuthPKCE_BrowserLoginHoldsNoLock(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	callback := fmt.Sprintf("http://localhost:%d", freeLoopbackPort(t))
	other, err := lakebase.NewConnector(emu.OAuthPKCEDSN("OAuthSettingsLocation=" + file))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	during := make(chan error, 1)
	open := func(u string) error {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := other.AuthorizationURL(ctx, lakebase.AuthorizationRequest{})
			cancel()
			during <- err
			emu.SetAutoApprove(true)
			defer emu.SetAutoApprove(false)
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
			}
		}()
		return nil
	}
	db, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=GETANDREFRESH", "CallbackURL="+callback, "OAuthSettingsLocation="+file),
		lakebase.WithBrowserOpener(open), lakebase.WithStderr(&strings.Builder{}))
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := <-during; err != nil {
		t.Fatalf("the settings file was locked during the browser login: %v", err)
	}
}
