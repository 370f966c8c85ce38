package lakebase_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zalando/go-keyring"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/settings"
)

// The keyring store is tested against a real Secret Service: this test starts a
// private D-Bus session with GNOME Keyring (in a temporary home) and runs the
// TestKeyringInner_ tests in a process inside it.
func TestKeyring_AgainstARealSecretService(t *testing.T) {
	needServers(t)
	if os.Getenv("LAKEBASE_KEYRING_INNER") != "" {
		t.Skip("inside the keyring session")
	}
	session, err1 := exec.LookPath("dbus-run-session")
	_, err2 := exec.LookPath("gnome-keyring-daemon")
	if err1 != nil || err2 != nil {
		if testenv.KeyringRequired() {
			t.Fatal("dbus-run-session and gnome-keyring-daemon are needed (Debian: apt-get install -y dbus gnome-keyring)")
		}
		t.Skip("skipped: dbus-run-session and gnome-keyring-daemon are needed (make test installs them on Linux)")
	}
	home := t.TempDir()
	script := `printf lakebase | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null 2>&1 || exit 3
exec "$0" -test.run '^TestKeyringInner_' -test.v -test.count=1`
	cmd := exec.Command(session, "--", "sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), "LAKEBASE_KEYRING_INNER=1", "HOME="+home,
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_RUNTIME_DIR="+home)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestKeyringInner_") || strings.Contains(string(out), "--- FAIL") {
		t.Fatalf("keyring tests in a D-Bus session: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "--- ") || strings.Contains(line, "refreshes across") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

func keyringInner(t *testing.T) {
	t.Helper()
	if os.Getenv("LAKEBASE_KEYRING_INNER") == "" {
		t.Skip("runs inside TestKeyring_AgainstARealSecretService's D-Bus session")
	}
	needServers(t)
}

// The store itself: what the file store does, in the keyring.
func TestKeyringInner_StoreSemantics(t *testing.T) {
	keyringInner(t)
	st, err := settings.OpenStore("keyring://semantics")
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), func(s *settings.Settings) (bool, error) {
		s.Tokens["w|c|s"] = &settings.StoredToken{AccessToken: "a", RefreshToken: "r"}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := settings.OpenStore("keyring://semantics")
	var got string
	again.Update(context.Background(), func(s *settings.Settings) (bool, error) { got = s.Tokens["w|c|s"].RefreshToken; return false, nil })
	if got != "r" || again.Location() != "keyring://semantics" {
		t.Fatalf("read back %q", got)
	}
	// A corrupt item is an error naming the store, and is left alone.
	for _, bad := range []string{"{{{", `{"version":1,"tokens":{},"pending":{"s":null}}`, `{"version":9,"tokens":{}}`} {
		keyring.Set(settings.KeyringService, "corrupt", bad)
		cs, _ := settings.OpenStore("keyring://corrupt")
		err := cs.Update(context.Background(), func(*settings.Settings) (bool, error) { return true, nil })
		if !errors.Is(err, lakebase.ErrSettingsFile) || !strings.Contains(err.Error(), "keyring://corrupt") {
			t.Fatalf("%q: %v", bad, err)
		}
		if v, _ := keyring.Get(settings.KeyringService, "corrupt"); v != bad {
			t.Fatal("the corrupt item was changed")
		}
	}
	if _, err := settings.OpenStore("keyring://bad name/x"); err == nil {
		t.Fatal("a bad keyring name was accepted")
	}
}

// A second process on a keyring store makes no workspace request; logout removes
// the login from the keyring.
func TestKeyringInner_WarmRestartAndLogout(t *testing.T) {
	keyringInner(t)
	dsn := emu.OAuthClientDSN("OAuthSettingsLocation=keyring://warm")
	queryInProcess(t, dsn)
	before := workspaceRequests(emu)
	queryInProcess(t, dsn)
	if n := workspaceRequests(emu) - before; n != 0 {
		t.Fatalf("the warm process made %d requests", n)
	}
	c, _ := lakebase.NewConnector(dsn)
	if c.SettingsLocation() != "keyring://warm" {
		t.Fatalf("SettingsLocation %q", c.SettingsLocation())
	}
	if err := c.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	v, _ := keyring.Get(settings.KeyringService, "warm")
	if strings.Contains(v, `"access_token"`) || strings.Contains(v, `"credentials":{"`) {
		t.Fatalf("logout left a login in the keyring: %.200s", v)
	}
}

// Eight processes share one rotating refresh token through the keyring; none is
// ever redeemed twice.
func TestKeyringInner_EightProcessesShareRotatingRefreshTokens(t *testing.T) {
	keyringInner(t)
	sharedRefreshRunAt(t, "keyring://shared", 8, 10)
}

// Without a keyring, a keyring store says so and names the file alternative; the
// driver never falls back to something else silently, not even for OAuthClient.
func TestKeyring_UnavailableIsAClearError(t *testing.T) {
	if os.Getenv("LAKEBASE_KEYRING_INNER") != "" {
		t.Skip("a keyring is available here")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	st, err := settings.OpenStore("keyring://none")
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), func(*settings.Settings) (bool, error) { return true, nil })
	if !errors.Is(err, settings.ErrNoKeyring) || !strings.Contains(err.Error(), "OAuthSettingsLocation=<path>") {
		t.Fatalf("no keyring: %v", err)
	}
	c, err := lakebase.NewConnector(emu.OAuthClientDSN("OAuthSettingsLocation=keyring://none"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Login(context.Background()); !errors.Is(err, settings.ErrNoKeyring) {
		t.Fatalf("OAuthClient fell back silently: %v", err)
	}
}

// Processes with different XDG_CACHE_HOME share the keyring item, so they must share
// its lock: 8 processes × 10 read-modify-writes of one counter lose none.
func TestKeyringInner_ProcessesWithDifferentCacheDirsShareTheLock(t *testing.T) {
	keyringInner(t)
	const procs, each = 8, 10
	var wg sync.WaitGroup
	errs := make([]error, procs)
	outs := make([]string, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=keyring-increment", fmt.Sprintf("LAKEBASE_HELPER_N=%d", each),
				"XDG_CACHE_HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			errs[i], outs[i] = err, string(out)
		}()
	}
	wg.Wait()
	for i := range procs {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	st, _ := settings.OpenStore("keyring://counter")
	var n string
	st.Update(context.Background(), func(s *settings.Settings) (bool, error) {
		if e := s.Tokens["w|c|s"]; e != nil {
			n = e.RefreshToken
		}
		return false, nil
	})
	if n != fmt.Sprint(procs*each) {
		t.Fatalf("the counter is %s after %d updates: updates were lost", n, procs*each)
	}
}

// helperKeyringIncrement adds one to the counter in keyring://counter N times.
func helperKeyringIncrement() int {
	var n int
	fmt.Sscan(os.Getenv("LAKEBASE_HELPER_N"), &n)
	st, err := settings.OpenStore("keyring://counter")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	for range n {
		err := st.Update(context.Background(), func(s *settings.Settings) (bool, error) {
			v := 0
			if e := s.Tokens["w|c|s"]; e != nil {
				fmt.Sscan(e.RefreshToken, &v)
			}
			s.Tokens["w|c|s"] = &settings.StoredToken{AccessToken: "a", RefreshToken: fmt.Sprint(v + 1)}
			return true, nil
		})
		if err != nil {
			fmt.Println(err)
			return 1
		}
	}
	return 0
}
