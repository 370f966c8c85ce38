package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// lakebase login with no workspace: the login starts at the login host, the person
// picks the workspace, and the command stores the tokens under it and prints the
// connection string to use, which then works without a login.
func TestCommand_LoginWithNoWorkspace(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true})
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := fmt.Sprintf("AuthScheme=OAuthPKCE;LoginHost=%s;CallbackURL=http://localhost:%d;OAuthSettingsLocation=%s", emu.LoginHost(), freePort(t), store)
	code, out, stderr := loginNoBrowser(t, dsn, emu.LoginHost()+"/?destination_url=")
	if code != 0 || !strings.Contains(out, "Logged in to "+emu.URL) || !strings.Contains(stderr, "logging in to workspace "+emu.URL+" ") {
		t.Fatalf("login (%d): %s\n%s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	conn := lines[len(lines)-1]
	if !strings.Contains(conn, "DatabricksInstance="+emu.URL) || !strings.Contains(conn, "InitiateOAuth=REFRESH") {
		t.Fatalf("the printed connection string: %q", conn)
	}
	conn += fmt.Sprintf(";Instance=%s;Port=%d;SSLMode=verify-full;SSLServerCert=%s", emu.Instance, emu.Port, emu.CAFile)
	if o, e, code := lakebaseCmd(t, conn, nil, "psql", "-XAtc", "SELECT current_user"); code != 0 || strings.TrimSpace(o) != emu.User.Email {
		t.Fatalf("psql with the printed connection string (%d): %s %s", code, o, e)
	}
}

// lakebase login with no workspace, attacked: a local process that read the login
// URL (printed, and on the browser opener's command line) sends the callback the
// right state with its own loopback token endpoint as iss, or pastes such a URL
// in the headless flow. The command fails naming the issuer's host and saying the
// login was not completed; the forged endpoint gets nothing; no login is stored.
func TestCommand_LoginWithNoWorkspaceRefusesAForgedIssuer(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"evil-at","token_type":"Bearer","expires_in":3600,"refresh_token":"evil-rt"}`)
	}))
	defer evil.Close()
	iss := evil.URL + "/oidc"
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	for _, headless := range []bool{false, true} {
		t.Run(fmt.Sprintf("headless=%v", headless), func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
			dsn := fmt.Sprintf("AuthScheme=OAuthPKCE;LoginHost=%s;CallbackURL=http://localhost:%d;OAuthSettingsLocation=%s", emu.LoginHost(), freePort(t), store)
			args := []string{"-dsn", dsn, "login", "-no-browser"}
			if headless {
				args = []string{"-dsn", dsn, "login", "-headless"}
			}
			stdinR, stdinW := io.Pipe()
			outR, outW := io.Pipe()
			errR, errW := io.Pipe()
			done := make(chan int, 1)
			go func() {
				code := run(context.Background(), args, stdinR, outW, errW)
				outW.Close()
				errW.Close()
				stdinW.Close()
				done <- code
			}()
			// Read both outputs; on the login URL, forge its callback (desktop) or
			// paste a forged final URL (headless).
			var mu sync.Mutex
			var all strings.Builder
			var wg sync.WaitGroup
			for _, r := range []io.Reader{outR, errR} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sc := bufio.NewScanner(r)
					for sc.Scan() {
						line := strings.TrimSpace(sc.Text())
						mu.Lock()
						all.WriteString(line + "\n")
						mu.Unlock()
						if !strings.HasPrefix(line, emu.LoginHost()+"/?destination_url=") {
							continue
						}
						forged := forgedCallbackURL(t, line, iss)
						if headless {
							go io.WriteString(stdinW, forged+"\n")
						} else if resp, err := http.Get(forged); err == nil {
							resp.Body.Close()
						}
					}
				}()
			}
			code := <-done
			wg.Wait()
			out := all.String()
			if code == 0 || !strings.Contains(out, fmt.Sprintf("issuer host %q", evilHost)) || !strings.Contains(out, "not completed") {
				t.Fatalf("login with a forged iss (%d):\n%s", code, out)
			}
			if strings.Contains(out, "Logged in to") || strings.Contains(out, "logging in to workspace") {
				t.Fatalf("the command named the forged workspace as the one logged in to:\n%s", out)
			}
			if n := hits.Load(); n != 0 {
				t.Fatalf("the forged token endpoint got %d requests", n)
			}
			if _, err := os.Stat(store); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a login was stored (%v)", err)
			}
		})
	}
}

// forgedCallbackURL is the callback of the login at loginURL (its redirect_uri
// and state) with a code and an iss of the attacker's choosing.
func forgedCallbackURL(t *testing.T, loginURL, iss string) string {
	u, err := url.Parse(loginURL)
	if err != nil {
		t.Error(err)
		return ""
	}
	dest, err := url.Parse(u.Query().Get("destination_url"))
	if err != nil {
		t.Error(err)
		return ""
	}
	q := dest.Query()
	return q.Get("redirect_uri") + "?" + url.Values{"code": {"forged-code"}, "state": {q.Get("state")}, "iss": {iss}}.Encode()
}
