package main

import (
	"github.com/lakebase-go/lakebase/internal/testenv"

	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
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
	app := &App{DB: db}
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
	app2 := &App{DB: lakebase.OpenDB(c2), BaseURL: srv.URL}
	defer app2.DB.Close()
	rec := httptest.NewRecorder()
	app2.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/login" {
		t.Fatalf("anonymous /: %d %s", rec.Code, rec.Header().Get("Location"))
	}
}
