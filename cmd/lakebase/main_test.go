package main

import (
	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

func lakebaseCmd(t *testing.T, dsn string, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	code := run(context.Background(), append([]string{"-dsn", dsn}, args...), stdin, &out, &errb)
	return out.String(), errb.String(), code
}

func TestCommand_StatusTokenPsql(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	dsn := emu.OAuthClientDSN()

	out, errOut, code := lakebaseCmd(t, dsn, nil, "status")
	if code != 0 || !strings.Contains(out, "user:              "+emu.ServicePrincipal.ClientID) ||
		!strings.Contains(out, "credential expires:") || !strings.Contains(out, emu.Endpoint) {
		t.Fatalf("status (%d): %s %s", code, out, errOut)
	}
	if strings.Contains(out, "eyJ") {
		t.Fatal("status shows a token without -show-token")
	}
	// The emulator's CA is not a system root: status says verify-full against the
	// system roots would refuse this server.
	if !strings.Contains(out, "server certificate: does not verify against the system roots for "+emu.Host) {
		t.Fatalf("status says nothing useful about the certificate:\n%s", out)
	}

	out, _, code = lakebaseCmd(t, dsn, nil, "token")
	var tok struct {
		Token                        string `json:"password"` // the README calls it the password
		User, Host, Database, Expiry string
		Port                         int
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || code != 0 || tok.Token == "" || tok.Expiry == "" {
		t.Fatalf("token (%d): %s", code, out)
	}
	pc, err := pgconn.Connect(context.Background(), fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s sslmode=verify-full sslrootcert=%s",
		tok.Host, tok.Port, tok.Database, tok.User, tok.Token, emu.CAFile))
	if err != nil {
		t.Fatalf("logging in with the printed credential: %v", err)
	}
	pc.Close(context.Background())
	bare, _, _ := lakebaseCmd(t, dsn, nil, "token", "-bare")
	if strings.TrimSpace(bare) == "" || strings.Contains(bare, "{") {
		t.Fatalf("token -bare: %q", bare)
	}

	out, errOut, code = lakebaseCmd(t, dsn, nil, "psql", "-XAtc", "SELECT current_user")
	if code != 0 || strings.TrimSpace(out) != emu.ServicePrincipal.ClientID {
		t.Fatalf("psql (%d): %q %s", code, out, errOut)
	}
	if err := emu.Exec(fmt.Sprintf(`CREATE ROLE readers NOLOGIN; GRANT readers TO %q`, emu.ServicePrincipal.ClientID)); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = lakebaseCmd(t, dsn, nil, "psql", "-role", "readers", "-XAtc", "SELECT current_user || ' ' || session_user")
	if code != 0 || strings.TrimSpace(out) != "readers "+emu.ServicePrincipal.ClientID {
		t.Fatalf("psql -role (%d): %q %s", code, out, errOut)
	}
	_, _, code = lakebaseCmd(t, dsn, nil, "psql", "-XAtc", "SELECT broken syntax")
	if code == 0 {
		t.Fatal("psql's failure did not become the exit code")
	}
	if _, errOut, code := lakebaseCmd(t, dsn, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %s", code, errOut)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// followURL plays the browser in auto-approve mode: it follows the authorization URL
// to the callback and returns the callback URL.
func followURL(t *testing.T, u string, toCallback bool) string {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		if toCallback {
			return nil
		}
		return http.ErrUseLastResponse
	}}
	resp, err := client.Get(u)
	if err != nil {
		t.Error(err)
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("Location")
}

func TestCommand_LoginDesktopAndHeadlessThenLogout(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true})
	settings := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := emu.OAuthPKCEDSN(fmt.Sprintf("CallbackURL=http://localhost:%d", freePort(t)), "OAuthSettingsLocation="+settings)

	// Desktop: the URL goes to stderr; the "browser" follows it to the callback.
	code, out, stderr := loginNoBrowser(t, dsn, emu.URL+"/oidc/v1/authorize?")
	if code != 0 || !strings.Contains(out, "Logged in as "+emu.User.Email) {
		t.Fatalf("login (%d): %s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "waiting for the browser login") {
		t.Fatalf("no progress line: %s", stderr)
	}
	refresh := dsn + ";InitiateOAuth=REFRESH"
	if o, e, code := lakebaseCmd(t, refresh, nil, "status"); code != 0 || !strings.Contains(o, emu.User.Email) {
		t.Fatalf("status after login (%d): %s %s", code, o, e)
	}

	// Logout: the stored login is gone.
	if o, _, code := lakebaseCmd(t, refresh, nil, "logout"); code != 0 || !strings.Contains(o, "Removed the stored login") {
		t.Fatalf("logout (%d): %s", code, o)
	}
	if _, e, code := lakebaseCmd(t, refresh, nil, "status"); code == 0 || !strings.Contains(e, "no stored login") {
		t.Fatalf("status after logout (%d): %s", code, e)
	}

	// Headless: paste the URL the browser ended on.
	done := make(chan int, 1)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() {
		done <- run(context.Background(), []string{"-dsn", dsn, "login", "-headless"}, inR, outW, io.Discard)
		outW.Close()
	}()
	var transcript strings.Builder
	rd := bufio.NewReader(outR)
	for {
		line, err := rd.ReadString('\n')
		transcript.WriteString(line)
		if u := strings.TrimSpace(line); strings.HasPrefix(u, emu.URL+"/oidc/v1/authorize?") {
			cb := followURL(t, u, false)
			go io.WriteString(inW, cb+"\n")
		}
		if err != nil {
			break
		}
	}
	if code := <-done; code != 0 || !strings.Contains(transcript.String(), "Logged in as "+emu.User.Email) {
		t.Fatalf("headless login (%d): %s", code, transcript.String())
	}
	if o, e, code := lakebaseCmd(t, refresh, nil, "psql", "-XAtc", "SELECT current_user"); code != 0 || strings.TrimSpace(o) != emu.User.Email {
		t.Fatalf("psql as the person (%d): %s %s", code, o, e)
	}
}

// Help and version need no connection string and exit 0; so does -h of every command.
func TestCommand_HelpAndVersion(t *testing.T) {
	t.Setenv("LAKEBASE_DSN", "")
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"version"}, {"help", "token"},
		{"login", "-h"}, {"token", "-h"}, {"status", "-h"}, {"logout", "-h"}, {"psql", "-h"}, {"psql", "--help"}} {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
		if code != 0 || out.Len() == 0 {
			t.Fatalf("lakebase %v: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
		if args[0] == "version" && !strings.Contains(out.String(), lakebase.Version) {
			t.Fatalf("version prints %q", out.String())
		}
	}
	if code := run(context.Background(), []string{"frobnicate"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// Usage is printed once: on stdout when asked for, on stderr after a mistake; an
// error is prefixed "lakebase:" once.
func TestCommand_UsageOnceAndErrorsPrefixedOnce(t *testing.T) {
	t.Setenv("LAKEBASE_DSN", "")
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out, errb bytes.Buffer
		run(context.Background(), args, strings.NewReader(""), &out, &errb)
		if strings.Count(out.String(), "usage: lakebase") != 1 || errb.Len() != 0 {
			t.Fatalf("lakebase %v: stdout %q, stderr %q", args, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-nosuchflag"}, strings.NewReader(""), &out, &errb); code != 2 ||
		out.Len() != 0 || strings.Count(errb.String(), "usage: lakebase") != 1 {
		t.Fatalf("a mistake (%d): stdout %q, stderr %q", code, out.String(), errb.String())
	}
	for _, args := range [][]string{{"-dsn", "AuthScheme=Nope", "status"}, {"-dsn", "AuthScheme=OAuthPKCE;DatabricksInstance=http://127.0.0.1:1;Instance=i;OAuthSettingsLocation=memory://x", "status"}} {
		var out, errb bytes.Buffer
		run(context.Background(), args, strings.NewReader(""), &out, &errb)
		if !strings.HasPrefix(errb.String(), "lakebase: ") || strings.Contains(errb.String(), "lakebase: lakebase:") {
			t.Fatalf("lakebase %v: %q", args, errb.String())
		}
	}
}

// loginNoBrowser runs lakebase login -no-browser, following the printed URL as the
// person's browser would, and returns the exit code, stdout and stderr.
func loginNoBrowser(t *testing.T, dsn, authorizePrefix string) (int, string, string) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		done <- run(context.Background(), []string{"-dsn", dsn, "login", "-no-browser"}, strings.NewReader(""), &out, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var stderr strings.Builder
	for sc.Scan() {
		line := sc.Text()
		stderr.WriteString(line + "\n")
		if u := strings.TrimSpace(line); strings.HasPrefix(u, authorizePrefix) {
			go followURL(t, u, true)
		}
	}
	return <-done, out.String(), stderr.String()
}

// The README's OAuthPKCE sequence, exactly as written (no InitiateOAuth, no
// OAuthSettingsLocation, a fresh home directory): login stores the tokens; status
// and psql use them; logout removes them (also when the host's case differs) and
// then says that nothing is stored.
func TestCommand_READMEPKCESequenceWithAFreshHome(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true})
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	workspace := strings.Replace(emu.URL, "127.0.0.1", "localhost", 1)
	dsn := strings.Replace(emu.OAuthPKCEDSN(), "DatabricksInstance="+emu.URL, "DatabricksInstance="+workspace, 1)
	if strings.Contains(dsn, "InitiateOAuth") || strings.Contains(dsn, "OAuthSettingsLocation") {
		t.Fatalf("the connection string is not the README's: %s", dsn)
	}

	if code, out, _ := loginNoBrowser(t, dsn, emu.URL+"/oidc/v1/authorize?"); code != 0 || !strings.Contains(out, "Logged in as "+emu.User.Email) {
		t.Fatalf("login (%d): %s", code, out)
	}
	if o, e, code := lakebaseCmd(t, dsn, nil, "status"); code != 0 || !strings.Contains(o, emu.User.Email) {
		t.Fatalf("status after login (%d): %s %s", code, o, e)
	}
	if o, e, code := lakebaseCmd(t, dsn, nil, "psql", "-XAtc", "SELECT current_user"); code != 0 || strings.TrimSpace(o) != emu.User.Email {
		t.Fatalf("psql after login (%d): %s %s", code, o, e)
	}
	upper := strings.Replace(dsn, "http://localhost", "http://LOCALHOST", 1)
	if o, e, code := lakebaseCmd(t, upper, nil, "logout"); code != 0 || !strings.Contains(o, "Removed the stored login") {
		t.Fatalf("logout (%d): %s %s", code, o, e)
	}
	data, err := os.ReadFile(filepath.Join(home, ".config", "lakebase", "OAuthSettings.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "refresh_token") {
		t.Fatalf("the refresh token stayed in the file after logout:\n%s", data)
	}
	if o, e, code := lakebaseCmd(t, dsn, nil, "logout"); code != 0 || !strings.Contains(o, "Nothing was stored") {
		t.Fatalf("second logout (%d): %s %s", code, o, e)
	}
	if _, e, code := lakebaseCmd(t, dsn, nil, "status"); code == 0 || !strings.Contains(e, "no stored login") || !strings.Contains(e, "lakebase login") {
		t.Fatalf("status after logout (%d): %s", code, e)
	}
}
