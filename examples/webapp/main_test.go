package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// TestWebApp_LoginToQueryResult follows redirects from /login through the emulator's
// authorize endpoint (auto-approve) and /callback to the page of query results.
func TestWebApp_LoginToQueryResult(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true})
	c, err := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://webapp-test"))
	if err != nil {
		t.Fatal(err)
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	app := &App{DB: db, Connector: c}
	srv := httptest.NewServer(nil)
	defer srv.Close()
	app.BaseURL = srv.URL
	srv.Config.Handler = app.Handler()

	jar, _ := cookiejar.New(nil)
	var visited []string
	client := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		visited = append(visited, r.URL.Path)
		return nil
	}}
	resp, err := client.Get(srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<span id="user">`+emu.User.Email+`</span>`) ||
		!strings.Contains(string(body), "<td>pg_catalog</td>") {
		t.Fatalf("status %d, page:\n%s", resp.StatusCode, body)
	}
	if strings.Join(visited, " ") != "/oidc/v1/authorize /callback /" {
		t.Fatalf("redirects went through %v", visited)
	}
	// Without a login, / sends the browser to /login.
	c2, _ := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://webapp-nobody"))
	app2 := &App{DB: lakebase.OpenDB(c2), Connector: c2, BaseURL: srv.URL}
	defer app2.DB.Close()
	rec := httptest.NewRecorder()
	app2.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/login" {
		t.Fatalf("anonymous /: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}

// TestWebApp_CallbackFromAnotherBrowserRefused: login CSRF. An attacker starts a
// login, approves it as themselves, and sends the victim the callback link; the
// victim's browser has no (or another) state cookie, so the app refuses it.
func TestWebApp_CallbackFromAnotherBrowserRefused(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	c, err := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://webapp-csrf"))
	if err != nil {
		t.Fatal(err)
	}
	app := &App{DB: lakebase.OpenDB(c), Connector: c, BaseURL: "http://localhost:8080"}
	defer app.DB.Close()
	// The attacker's browser starts the login and gets the callback link.
	rec := httptest.NewRecorder()
	app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/login", nil))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	link, _ := resp.Location()
	attackerCookie := rec.Result().Cookies()[0]

	for name, cookie := range map[string]*http.Cookie{"no cookie": nil, "another state": {Name: stateCookie, Value: "victims-own-state"}} {
		req := httptest.NewRequest("GET", link.RequestURI(), nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("%s: callback answered %d", name, rec.Code)
		}
	}
	if _, err := c.Login(context.Background()); err == nil {
		t.Fatal("the victim's app was logged in as the attacker")
	}
	// The browser that started it is let through.
	req := httptest.NewRequest("GET", link.RequestURI(), nil)
	req.AddCookie(attackerCookie)
	rec = httptest.NewRecorder()
	app.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/" {
		t.Fatalf("the right browser: %d %s", rec.Code, rec.Body)
	}
}
