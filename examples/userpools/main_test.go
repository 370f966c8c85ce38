package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// TestUserPoolsApp_EachPersonSeesOnlyTheirNotes runs the app against the emulator
// as the Apps proxy would call it: each person's token in X-Forwarded-Access-Token.
// Row-level security shows each person only their own notes; a forged
// X-Forwarded-Email changes nothing; a missing or revoked token is answered 401.
func TestUserPoolsApp_EachPersonSeesOnlyTheirNotes(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	for _, q := range Schema {
		if err := emu.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	base, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	pools := lakebase.NewUserPools(base, lakebase.UserPoolOptions{})
	defer pools.Close()
	app := (&App{Pools: pools}).Handler()

	token := map[string]string{}
	for _, who := range []string{"alice@example.com", "bob@example.com"} {
		if token[who], err = emu.UserToken(who); err != nil {
			t.Fatal(err)
		}
	}
	do := func(method, path, tok, email string, form url.Values) (int, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		r := httptest.NewRequest(method, path, body)
		if form != nil {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if tok != "" {
			r.Header.Set("X-Forwarded-Access-Token", tok)
		}
		if email != "" {
			r.Header.Set("X-Forwarded-Email", email)
			r.Header.Set("X-Forwarded-User", email)
		}
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}

	if code, page := do("POST", "/notes", token["alice@example.com"], "alice@example.com", url.Values{"body": {"alice's secret"}}); code != http.StatusSeeOther {
		t.Fatalf("alice's note: %d %s", code, page)
	}
	// Bob claims to be Alice in the headers; his token decides.
	if code, page := do("POST", "/notes", token["bob@example.com"], "alice@example.com", url.Values{"body": {"bob's note"}}); code != http.StatusSeeOther {
		t.Fatalf("bob's note: %d %s", code, page)
	}
	code, page := do("GET", "/", token["alice@example.com"], "", nil)
	if code != 200 || !strings.Contains(page, `<span id="user">alice@example.com</span>`) ||
		!strings.Contains(page, "<li>alice&#39;s secret</li>") || strings.Contains(page, "bob") {
		t.Fatalf("alice's page: %d\n%s", code, page)
	}
	code, page = do("GET", "/", token["bob@example.com"], "alice@example.com", nil)
	if code != 200 || !strings.Contains(page, `<span id="user">bob@example.com</span>`) ||
		!strings.Contains(page, "<li>bob&#39;s note</li>") || strings.Contains(page, "alice&#39;s secret") {
		t.Fatalf("bob's page, with alice's name in the headers: %d\n%s", code, page)
	}

	// A form of another site posting with the person's token (the proxy's cookie): refused.
	r := httptest.NewRequest("POST", "/notes", strings.NewReader("body=forged"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Forwarded-Access-Token", token["alice@example.com"])
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	app.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("a cross-site post: %d", w.Code)
	}

	// No token, or one the workspace refuses: 401, and nobody's notes.
	if code, page := do("GET", "/", "", "alice@example.com", nil); code != http.StatusUnauthorized || strings.Contains(page, "secret") {
		t.Fatalf("no token: %d %s", code, page)
	}
	revoked, err := emu.UserToken("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	emu.Revoke(revoked)
	if code, page := do("GET", "/", revoked, "", nil); code != http.StatusUnauthorized || strings.Contains(page, "secret") {
		t.Fatalf("a revoked token: %d %s", code, page)
	}
}

// TestUserPoolsApp_TheLocalProxyForwardsAPersonsToken checks the stand-in for the
// Apps proxy that main puts in front of the emulator: ?as= names the person, and a
// token a client sends itself is dropped.
func TestUserPoolsApp_TheLocalProxyForwardsAPersonsToken(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	var got []string
	h := asProxy(emu, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, lakebase.ForwardedToken(r))
	}))
	r := httptest.NewRequest("GET", "/?as=carol@example.com", nil)
	r.Header.Set("X-Forwarded-Access-Token", "forged")
	h.ServeHTTP(httptest.NewRecorder(), r)
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Forwarded-Access-Token", "forged")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if len(got) != 2 || got[0] == "" || got[0] == "forged" || got[1] != "" {
		t.Fatalf("forwarded tokens: %q", got)
	}
}
