package lakebase_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// evilEndpoint is a token endpoint on loopback that an attacker runs: it records
// every request it gets and answers like a real one, so a login that trusted it
// would complete and store its tokens.
type evilEndpoint struct {
	*httptest.Server
	mu  sync.Mutex
	got []string
}

func startEvil(t *testing.T) *evilEndpoint {
	ev := &evilEndpoint{}
	ev.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		ev.mu.Lock()
		ev.got = append(ev.got, r.Method+" "+r.URL.Path+" (form keys: "+strings.Join(slices.Sorted(maps.Keys(r.PostForm)), ",")+")")
		ev.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"evil-at","token_type":"Bearer","expires_in":3600,"refresh_token":"evil-rt"}`)
	}))
	t.Cleanup(ev.Close)
	return ev
}

func (ev *evilEndpoint) requests() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Clone(ev.got)
}

// recordingTransport records the host of every request the driver makes and
// sends it on (next), or answers invalid_grant itself when next is nil: a login
// host name that needs no network.
type recordingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	got  []string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.got = append(rt.got, r.Method+" "+r.URL.Host+r.URL.Path)
	rt.mu.Unlock()
	if rt.next != nil {
		return rt.next.RoundTrip(r)
	}
	return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"error":"invalid_grant"}`)), Request: r}, nil
}

func (rt *recordingTransport) requests() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.got)
}

// forgeCallback plays a local process that read the login URL (it is printed, and
// it is on the browser opener's command line): it sends the login's callback
// listener the right state with a code and an iss of its choosing.
func forgeCallback(t *testing.T, loginURL, iss string) {
	u, err := url.Parse(loginURL)
	if err != nil {
		t.Error(err)
		return
	}
	dest, err := url.Parse(u.Query().Get("destination_url"))
	if err != nil {
		t.Error(err)
		return
	}
	q := dest.Query()
	forged := q.Get("redirect_uri") + "?" + url.Values{"code": {"forged-code"}, "state": {q.Get("state")}, "iss": {iss}}.Encode()
	resp, err := http.Get(forged)
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
}

// refusedNamingTheIssuer checks that err is the refusal of iss: an IssuerError
// that names the issuer's host and says the login was not completed.
func refusedNamingTheIssuer(t *testing.T, err error, iss string) {
	t.Helper()
	var ie *lakebase.IssuerError
	if !errors.Is(err, lakebase.ErrUntrustedIssuer) || !errors.As(err, &ie) {
		t.Fatalf("the login with a forged iss: %v", err)
	}
	host := ""
	if u, perr := url.Parse(iss); perr == nil {
		host = u.Host
	}
	if ie.IssuerHost != host || !strings.Contains(err.Error(), fmt.Sprintf("%q", host)) || !strings.Contains(err.Error(), "not completed") {
		t.Fatalf("the refusal does not name the issuer host %q: %v", host, err)
	}
}

func noStoredLogin(t *testing.T, store string) {
	t.Helper()
	if _, err := os.Stat(store); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the settings store was written (%v): a login was stored", err)
	}
}

// A local process that knows the login URL forges the callback with the right
// state and an iss of its own (its loopback token endpoint, a look-alike of a
// Databricks host, a URL with a path, userinfo or fragment trick): the login is
// refused before anything is sent, with an error naming the issuer's host, and
// nothing is stored. Desktop (the callback listener) and headless (the pasted
// URL), with the emulator as the loopback login host.
func TestDiscoveryLogin_RefusesIssuerOutsideLoginHostDomain(t *testing.T) {
	e := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	evil := startEvil(t)
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	emuHost := strings.TrimPrefix(e.URL, "http://")
	for _, iss := range []string{
		evil.URL + "/oidc",
		evil.URL,
		"http://" + emuHost + "@" + evilHost + "/oidc",
		evil.URL + "/oidc#" + emuHost,
		"https://evil.example/oidc",
		"https://dbc-1.cloud.databricks.com/oidc", // a Databricks host is no issuer of a loopback login host
		e.URL + "/oidc?x=" + evilHost,
		e.URL + "/elsewhere",
	} {
		for _, headless := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/headless=%v", iss, headless), func(t *testing.T) {
				store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
				rec := &recordingTransport{next: http.DefaultTransport}
				opts := []lakebase.Option{lakebase.WithHTTPClient(&http.Client{Transport: rec}), lakebase.WithStderr(&strings.Builder{})}
				dsn := fmt.Sprintf("LoginHost=%s;CallbackURL=%s;OAuthSettingsLocation=%s", e.LoginHost(), freeCallback(t), store)
				var err error
				if headless {
					a, aerr := lakebase.NewDiscoveryAuthorization(dsn)
					if aerr != nil {
						t.Fatal(aerr)
					}
					final := a.CallbackURL + "?" + url.Values{"code": {"forged-code"}, "state": {a.State}, "iss": {iss}}.Encode()
					_, err = lakebase.FinishDiscoveryLogin(context.Background(), dsn, a, final, opts...)
				} else {
					_, err = lakebase.DiscoveryLogin(context.Background(), dsn, append(opts, lakebase.WithBrowserOpener(func(u string) error {
						go forgeCallback(t, u, iss)
						return nil
					}))...)
				}
				refusedNamingTheIssuer(t, err, iss)
				if got := evil.requests(); len(got) != 0 {
					t.Fatalf("the evil endpoint got %q", got)
				}
				for _, r := range rec.requests() {
					if !strings.Contains(r, " "+emuHost+"/") {
						t.Fatalf("a request went to %s", r)
					}
				}
				if n := e.Count(lakebasetest.EPToken); n != 0 {
					t.Fatalf("the code was redeemed %d times", n)
				}
				noStoredLogin(t, store)
			})
		}
	}
}

// The same attack on a login through login.databricks.com: the driver's HTTP
// transport answers for every host (no network), and records where requests go.
// An issuer outside the Databricks domains (or loopback, or a look-alike) is
// refused before any request; a workspace host under them is where the code goes.
func TestDiscoveryLogin_RefusesIssuerOutsideDatabricksDomains(t *testing.T) {
	evil := startEvil(t)
	for _, iss := range []string{
		evil.URL + "/oidc",
		"https://evil.example/oidc",
		"https://evil.com#.cloud.databricks.com",
		"https://cloud.databricks.com.evil.com/oidc",
		"https://x.cloud.databricks.com@evil.com/oidc",
		"https://dbc-1.cloud.databricks.com:8443/oidc",
		"https://dbc-1.cloud.databricks.com/oidc/../../evil",
		"https://127.0.0.1/oidc",
		"https://dbc-1.cloud.databricks.com/oidc", // the control: this one is allowed
	} {
		for _, headless := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/headless=%v", iss, headless), func(t *testing.T) {
				store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
				rec := &recordingTransport{}
				opts := []lakebase.Option{lakebase.WithHTTPClient(&http.Client{Transport: rec}), lakebase.WithStderr(&strings.Builder{})}
				dsn := fmt.Sprintf("LoginHost=https://login.databricks.com;CallbackURL=%s;OAuthSettingsLocation=%s", freeCallback(t), store)
				var err error
				if headless {
					a, aerr := lakebase.NewDiscoveryAuthorization(dsn)
					if aerr != nil {
						t.Fatal(aerr)
					}
					final := a.CallbackURL + "?" + url.Values{"code": {"forged-code"}, "state": {a.State}, "iss": {iss}}.Encode()
					_, err = lakebase.FinishDiscoveryLogin(context.Background(), dsn, a, final, opts...)
				} else {
					_, err = lakebase.DiscoveryLogin(context.Background(), dsn, append(opts, lakebase.WithBrowserOpener(func(u string) error {
						go forgeCallback(t, u, iss)
						return nil
					}))...)
				}
				if got := evil.requests(); len(got) != 0 {
					t.Fatalf("the evil endpoint got %q", got)
				}
				got := rec.requests()
				if iss == "https://dbc-1.cloud.databricks.com/oidc" {
					if err == nil || errors.Is(err, lakebase.ErrUntrustedIssuer) {
						t.Fatalf("the allowed workspace: %v", err)
					}
					if len(got) != 1 || got[0] != "POST dbc-1.cloud.databricks.com/oidc/v1/token" {
						t.Fatalf("the allowed workspace got %q", got)
					}
					return
				}
				refusedNamingTheIssuer(t, err, iss)
				if len(got) != 0 {
					t.Fatalf("requests were sent: %q", got)
				}
				noStoredLogin(t, store)
			})
		}
	}
}

// The same attack on a private deployment whose LoginHost's parent is a public
// suffix (co.uk, github.io: anyone may register a name under it): the callback's
// iss names an attacker's host under that suffix. It is refused before any request
// (desktop and headless), and a LoginHost that is itself a public suffix is refused
// before a login starts, naming LoginHost. A workspace under the login host's own
// name is where the code goes.
func TestDiscoveryLogin_RefusesIssuerUnderAPublicSuffix(t *testing.T) {
	for _, c := range []struct{ loginHost, iss string }{
		{"https://login.co.uk", "https://attacker.co.uk/oidc"},
		{"https://login.co.uk", "https://ws.attacker.co.uk/oidc"},
		{"https://ws.github.io", "https://evil.github.io/oidc"},
		{"https://login.co.uk", "https://ws.login.co.uk/oidc"}, // the control: this one is allowed
	} {
		for _, headless := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/headless=%v", c.loginHost, c.iss, headless), func(t *testing.T) {
				store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
				rec := &recordingTransport{}
				opts := []lakebase.Option{lakebase.WithHTTPClient(&http.Client{Transport: rec}), lakebase.WithStderr(&strings.Builder{})}
				dsn := fmt.Sprintf("LoginHost=%s;CallbackURL=%s;OAuthSettingsLocation=%s", c.loginHost, freeCallback(t), store)
				var err error
				if headless {
					a, aerr := lakebase.NewDiscoveryAuthorization(dsn)
					if aerr != nil {
						t.Fatal(aerr)
					}
					final := a.CallbackURL + "?" + url.Values{"code": {"forged-code"}, "state": {a.State}, "iss": {c.iss}}.Encode()
					_, err = lakebase.FinishDiscoveryLogin(context.Background(), dsn, a, final, opts...)
				} else {
					_, err = lakebase.DiscoveryLogin(context.Background(), dsn, append(opts, lakebase.WithBrowserOpener(func(u string) error {
						go forgeCallback(t, u, c.iss)
						return nil
					}))...)
				}
				got := rec.requests()
				if c.iss == "https://ws.login.co.uk/oidc" {
					if err == nil || errors.Is(err, lakebase.ErrUntrustedIssuer) {
						t.Fatalf("the allowed workspace: %v", err)
					}
					if len(got) != 1 || got[0] != "POST ws.login.co.uk/oidc/v1/token" {
						t.Fatalf("the allowed workspace got %q", got)
					}
					return
				}
				refusedNamingTheIssuer(t, err, c.iss)
				if lh := strings.TrimPrefix(c.loginHost, "https://"); !strings.Contains(err.Error(), lh) {
					t.Fatalf("the refusal does not name LoginHost %s: %v", lh, err)
				}
				if len(got) != 0 {
					t.Fatalf("requests were sent: %q", got)
				}
				noStoredLogin(t, store)
			})
		}
	}
	for _, lh := range []string{"https://co.uk", "https://github.io", "https://10.0.0.5"} {
		dsn := "LoginHost=" + lh + ";CallbackURL=" + freeCallback(t)
		_, err := lakebase.NewDiscoveryAuthorization(dsn)
		var ce *lakebase.ConfigError
		if !errors.As(err, &ce) || ce.Property != "LoginHost" || !strings.Contains(err.Error(), strings.TrimPrefix(lh, "https://")) {
			t.Errorf("NewDiscoveryAuthorization with LoginHost %s: %v", lh, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		_, err = lakebase.DiscoveryLogin(ctx, dsn, lakebase.WithStderr(&strings.Builder{}), lakebase.WithBrowserOpener(func(string) error {
			t.Errorf("a login through LoginHost %s was started", lh)
			cancel()
			return nil
		}))
		cancel()
		if !errors.As(err, &ce) || ce.Property != "LoginHost" {
			t.Errorf("DiscoveryLogin with LoginHost %s: %v", lh, err)
		}
	}
}

// The person sees the workspace the login host named before any token is stored:
// the login prints it, and WithConfirmWorkspace is asked before the code is
// redeemed; a refusal there ends the login with nothing redeemed or stored
// (desktop and headless).
func TestDiscoveryLogin_ShowsTheWorkspaceBeforeStoringTokens(t *testing.T) {
	e := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	errNo := errors.New("not this workspace")
	for _, headless := range []bool{false, true} {
		for _, accept := range []bool{false, true} {
			t.Run(fmt.Sprintf("headless=%v/accept=%v", headless, accept), func(t *testing.T) {
				store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
				dsn := fmt.Sprintf("LoginHost=%s;CallbackURL=%s;OAuthSettingsLocation=%s", e.LoginHost(), freeCallback(t), store)
				tokens := e.Count(lakebasetest.EPToken)
				var asked []string
				var out strings.Builder
				opts := []lakebase.Option{lakebase.WithStderr(&out), lakebase.WithConfirmWorkspace(func(ws string) error {
					asked = append(asked, ws)
					if _, err := os.Stat(store); !errors.Is(err, fs.ErrNotExist) || e.Count(lakebasetest.EPToken) != tokens {
						t.Error("the code was redeemed or a login stored before the workspace was confirmed")
					}
					if !strings.Contains(out.String(), "logging in to workspace "+e.URL+" ") {
						t.Errorf("the workspace was not shown before the confirmation: %q", out.String())
					}
					if accept {
						return nil
					}
					return errNo
				})}
				var cfg *lakebase.Config
				var err error
				if headless {
					a, aerr := lakebase.NewDiscoveryAuthorization(dsn)
					if aerr != nil {
						t.Fatal(aerr)
					}
					final, ferr := follow(a.URL, false)
					if ferr != nil {
						t.Fatal(ferr)
					}
					cfg, err = lakebase.FinishDiscoveryLogin(context.Background(), dsn, a, final, opts...)
				} else {
					cfg, err = lakebase.DiscoveryLogin(context.Background(), dsn, append(opts, lakebase.WithBrowserOpener(func(u string) error {
						go follow(u, true)
						return nil
					}))...)
				}
				if len(asked) != 1 || asked[0] != e.URL {
					t.Fatalf("confirmed %q, want %q", asked, e.URL)
				}
				if !accept {
					if !errors.Is(err, errNo) || !strings.Contains(err.Error(), "not completed") {
						t.Fatalf("a refused workspace: %v", err)
					}
					if n := e.Count(lakebasetest.EPToken); n != tokens {
						t.Fatal("the code was redeemed at a refused workspace")
					}
					noStoredLogin(t, store)
					return
				}
				if err != nil || cfg.DatabricksInstance != e.URL {
					t.Fatalf("%v, %v", cfg, err)
				}
				if _, err := os.Stat(store); err != nil {
					t.Fatalf("no login was stored: %v", err)
				}
			})
		}
	}
}

// The desktop callback page names the workspace the person is logging in to.
func TestDiscoveryLogin_TheCallbackPageNamesTheWorkspace(t *testing.T) {
	e := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	dsn := fmt.Sprintf("LoginHost=%s;CallbackURL=%s;OAuthSettingsLocation=memory://pagenames", e.LoginHost(), freeCallback(t))
	page := make(chan string, 1)
	_, err := lakebase.DiscoveryLogin(context.Background(), dsn, lakebase.WithStderr(&strings.Builder{}),
		lakebase.WithBrowserOpener(func(u string) error {
			go func() {
				cb, err := follow(u, false)
				if err != nil {
					page <- err.Error()
					return
				}
				resp, err := http.Get(cb)
				if err != nil {
					page <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				page <- string(b)
			}()
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if p := <-page; !strings.Contains(p, "workspace "+e.URL) {
		t.Fatalf("the page does not name the workspace: %s", p)
	}
}
