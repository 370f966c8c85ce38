package lakebase_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// follow plays the person's browser with auto-approve: it follows u (the login
// host, then the workspace's authorize) to the callback, or stops before it and
// returns where it would go.
func follow(u string, toCallback bool) (string, error) {
	client := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !toCallback && strings.Contains(req.URL.RawQuery, "code=") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := client.Get(u)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Header.Get("Location"), nil
}

func freeCallback(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("http://localhost:%d", l.Addr().(*net.TCPAddr).Port)
}

// A host-agnostic login: the connection string names no workspace; the login
// starts at the login host with the workspace authorize path as destination_url;
// the callback's iss names the workspace; the tokens are stored under it, and the
// returned configuration connects with no further login (desktop and headless, on
// a workspace host and on a unified host whose OIDC lives at the account's path).
func TestDiscoveryLogin_LearnsTheWorkspaceFromTheCallback(t *testing.T) {
	needServers(t)
	for _, unified := range []bool{false, true} {
		t.Run(fmt.Sprintf("unified=%v", unified), func(t *testing.T) {
			e := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, UnifiedHost: unified})
			store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
			dsn := fmt.Sprintf("AuthScheme=OAuthPKCE;LoginHost=%s;CallbackURL=%s;OAuthSettingsLocation=%s", e.LoginHost(), freeCallback(t), store)
			var opened string
			cfg, err := lakebase.DiscoveryLogin(context.Background(), dsn, lakebase.WithStderr(&strings.Builder{}),
				lakebase.WithBrowserOpener(func(u string) error {
					opened = u
					go follow(u, true)
					return nil
				}))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(opened, e.LoginHost()+"/?destination_url=%2Foidc%2Fv1%2Fauthorize%3F") || !strings.Contains(opened, "code_challenge_method%3DS256") {
				t.Fatalf("the login URL: %s", opened)
			}
			if cfg.DatabricksInstance != e.URL {
				t.Fatalf("learned workspace %q, want %q", cfg.DatabricksInstance, e.URL)
			}
			if e.Count(lakebasetest.EPLoginHost) != 1 {
				t.Fatal("the login did not start at the login host")
			}
			// The stored login is used: no browser, the person's role.
			conn := cfg.FormatDSN() + ";Endpoint=" + e.Endpoint + fmt.Sprintf(";Port=%d;SSLMode=verify-full;SSLServerCert='%s'", e.Port, e.CAFile)
			db, _ := newDB(t, conn, lakebase.WithBrowserOpener(func(string) error { t.Error("the browser was opened again"); return nil }))
			if u := currentUser(t, db); u != e.User.Email {
				t.Fatalf("connected as %q", u)
			}

			// Headless: the URL to open elsewhere, then the URL the browser ended on.
			store2 := filepath.Join(t.TempDir(), "OAuthSettings.txt")
			dsn2 := strings.Replace(dsn, store, store2, 1)
			a, err := lakebase.NewDiscoveryAuthorization(dsn2)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(fmt.Sprint(a), a.PKCEVerifier) {
				t.Fatal("the authorization prints its verifier")
			}
			final, err := follow(a.URL, false)
			if err != nil || !strings.Contains(final, "iss=") {
				t.Fatalf("the callback URL %q: %v", final, err)
			}
			cfg2, err := lakebase.FinishDiscoveryLogin(context.Background(), dsn2, a, final)
			if err != nil || cfg2.DatabricksInstance != e.URL {
				t.Fatalf("headless: %v, %v", cfg2, err)
			}
			if _, err := lakebase.FinishDiscoveryLogin(context.Background(), dsn2, a, strings.Replace(final, "state=", "state=x", 1)); err == nil {
				t.Fatal("a callback with another state was taken")
			}
		})
	}
	// A connection string that names the workspace is not a host-agnostic login; a
	// LoginHost that is not https is refused.
	if _, err := lakebase.DiscoveryLogin(context.Background(), "AuthScheme=OAuthPKCE;DatabricksInstance=dbc-1.cloud.databricks.com"); err == nil {
		t.Fatal("a DatabricksInstance was taken")
	}
	if _, err := lakebase.NewDiscoveryAuthorization("LoginHost=http://login.example.com"); err == nil || !strings.Contains(err.Error(), "LoginHost") {
		t.Fatalf("an http LoginHost: %v", err)
	}
}

// The emulator's workspace URL itself serves the login host too.
func TestDiscoveryLogin_TheWorkspaceURLAsLoginHost(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true})
	dsn := fmt.Sprintf("AuthScheme=OAuthPKCE;LoginHost=%s;CallbackURL=%s;OAuthSettingsLocation=memory://wsurl", e.URL, freeCallback(t))
	cfg, err := lakebase.DiscoveryLogin(context.Background(), dsn, lakebase.WithStderr(&strings.Builder{}),
		lakebase.WithBrowserOpener(func(u string) error { go follow(u, true); return nil }))
	if err != nil || cfg.DatabricksInstance != e.URL {
		t.Fatalf("%v, %v", cfg, err)
	}
}
