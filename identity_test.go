package lakebase_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
)

// withLoginHint makes an authorization URL sign in the emulator's person email.
func withLoginHint(authURL, email string) string {
	return authURL + "&login_hint=" + url.QueryEscape(email)
}

// desktopLoginAs is a browser opener that approves the desktop login as email.
func desktopLoginAs(email string) lakebase.Option {
	return lakebase.WithBrowserOpener(func(u string) error {
		go func() {
			emu.SetAutoApprove(true)
			defer emu.SetAutoApprove(false)
			if resp, err := http.Get(withLoginHint(u, email)); err == nil { // follows to the callback
				resp.Body.Close()
			}
		}()
		return nil
	})
}

// adaLogsIn logs the emulator's person (Ada) in with the desktop flow into a new
// settings file and returns its path.
func adaLogsIn(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	ada, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=GETANDREFRESH", "OAuthSettingsLocation="+file),
		desktopLoginAs(emu.User.Email), lakebase.WithStderr(&strings.Builder{}))
	if u := currentUser(t, ada); u != emu.User.Email {
		t.Fatalf("Ada's desktop login: current_user = %q", u)
	}
	ada.Close()
	return file
}

// addPerson registers a person of the emulated workspace, with a Postgres role.
func addPerson(t *testing.T, email string) {
	t.Helper()
	if err := emu.AddUser(email); err != nil {
		t.Fatal(err)
	}
}

// Ada logs in with the desktop flow into a settings file; Bob then logs in headless
// on the same file, as the README shows. Bob's code is redeemed and his session is
// his: nothing derived from Ada's login (credential, user name) answers for him.
func TestWarmStart_HeadlessLoginOfAnotherPersonReplacesTheStoredLogin(t *testing.T) {
	needServers(t)
	bob := "bob-headless@example.com"
	addPerson(t, bob)
	file := adaLogsIn(t)

	dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file)
	steps, _ := newDB(t, dsn)
	var r authURLRow
	if err := steps.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	code := approveByHTTP(t, withLoginHint(r.URL, bob)).Get("code")
	emu.ResetCounts()
	headless, _ := newDB(t, dsn+";OAuthVerifier="+code)
	if u := currentUser(t, headless); u != bob {
		t.Fatalf("Bob's headless login: current_user = %q, want %q", u, bob)
	}
	if n := emu.Count("token:authorization_code"); n != 1 {
		t.Fatalf("Bob's code was redeemed %d times, want 1", n)
	}
	headless.Close()

	// The next start on the file (without the code) is Bob's, warm.
	again, _ := newDB(t, dsn)
	if u := currentUser(t, again); u != bob {
		t.Fatalf("after Bob's login the stored login is %q", u)
	}
}

// Tokens of another person given in the connection string replace the stored login
// (and what was derived from it) instead of being ignored by a warm start.
func TestWarmStart_GivenTokensOfAnotherPersonReplaceTheStoredLogin(t *testing.T) {
	needServers(t)
	carol := "carol-given@example.com"
	addPerson(t, carol)
	file := adaLogsIn(t)

	// Carol's tokens, obtained elsewhere.
	mem, _ := newDB(t, emu.OAuthPKCEDSN("OAuthSettingsLocation=memory://"+t.Name()))
	var r authURLRow
	if err := mem.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	code := approveByHTTP(t, withLoginHint(r.URL, carol)).Get("code")
	var at, rt string
	var exp int64
	if err := mem.QueryRow("EXEC GetOAuthAccessToken Verifier=?, State=?", code, r.State).Scan(&at, &rt, &exp); err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]string{"access and refresh token": "OAuthAccessToken=" + at + ";OAuthRefreshToken=" + rt} {
		db, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file, extra))
		if u := currentUser(t, db); u != carol {
			t.Fatalf("%s: current_user = %q, want %q", name, u, carol)
		}
	}
}

// A token is stored under its scope: a connector asking for another scope gets its
// own token, never the one of the scope already stored.
func TestWarmStart_TokensOfAnotherScopeAreNotHandedOut(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	all, _ := newDB(t, emu.OAuthClientDSN("OAuthSettingsLocation="+file))
	currentUser(t, all)
	emu.ResetCounts()
	sqlOnly, c := newDB(t, emu.OAuthClientDSN("OAuthSettingsLocation="+file, "Scope=postgres"))
	currentUser(t, sqlOnly)
	if n := emu.Count("token:client_credentials"); n != 1 {
		t.Fatalf("a Scope=postgres connector over an all-apis store made %d token requests, want 1 of its own", n)
	}
	tok, err := c.TokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	if scope := jwtClaim(t, tok.AccessToken, "scope"); scope != "postgres" {
		t.Fatalf("the Scope=postgres connector holds a token of scope %q", scope)
	}
}

// jwtClaim reads one string claim of a JWT without verifying it.
func jwtClaim(t *testing.T, token, claim string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatal("the token is not a JWT")
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(data, &claims); err != nil {
		t.Fatal(err)
	}
	s, _ := claims[claim].(string)
	return s
}
