package lakebase_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lakebase-go/lakebase/settings"
)

// readOnlyDir returns a directory that becomes read-only when makeReadOnly is
// called: a tmpfs remounted read-only (as root, for whom permissions are no
// barrier), or a directory without write permission.
func readOnlyDir(t *testing.T) (dir string, makeReadOnly func()) {
	t.Helper()
	dir = t.TempDir()
	if os.Geteuid() != 0 {
		return dir, func() { os.Chmod(dir, 0o500); t.Cleanup(func() { os.Chmod(dir, 0o700) }) }
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a read-only place needs a tmpfs here (mount: %v %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir, func() {
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount read-only: %v %s", err, out)
		}
	}
}

// A settings file on a read-only mount (a mounted secret, as in "transfer a
// settings file") is used read-only: the stored login works with no lock and no
// write.
func TestSettingsFile_ReadOnlyMountIsUsedReadOnly(t *testing.T) {
	needServers(t)
	dir, makeReadOnly := readOnlyDir(t)
	file := filepath.Join(dir, "OAuthSettings.txt")
	dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file)
	seeded, _ := newDB(t, dsn+";OAuthRefreshToken="+userRefreshToken(t))
	if u := currentUser(t, seeded); u != emu.User.Email {
		t.Fatalf("current_user %q", u)
	}
	seeded.Close()
	makeReadOnly()
	db, _ := newDB(t, dsn)
	if u := currentUser(t, db); u != emu.User.Email {
		t.Fatalf("on the read-only mount: current_user %q", u)
	}
}

// TestSettingsFile_NeverTornByAKillNineMidWrite kills a process that keeps rewriting the
// settings file, many times at random moments: the file is always a whole version.
func TestSettingsFile_NeverTornByAKillNineMidWrite(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	rounds := pick(15, 60)
	versions := 0
	for r := 0; r < rounds; r++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=write-loop", "LAKEBASE_HELPER_FILE="+file)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for its first write (a loaded machine starts processes slowly), then
		// kill it at a random moment of the writes that follow.
		ready := make(chan bool, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			ready <- strings.HasPrefix(line, "ready")
			io.Copy(io.Discard, stdout)
		}()
		select {
		case ok := <-ready:
			if !ok {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the writer failed before its first write")
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the writer did not start")
		}
		time.Sleep(time.Duration(1+rand.IntN(40)) * time.Millisecond) // a random moment
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		data, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue // killed before the first write
		}
		var s settings.Settings
		if err := json.Unmarshal(data, &s); err != nil || s.Version != settings.SettingsVersion || s.Tokens["w|c|s"] == nil {
			t.Fatalf("round %d: the file is torn (%v): %.200q", r, err, data)
		}
		versions++
	}
	if versions == 0 {
		t.Fatal("the writer never wrote")
	}
	// A driver opening the file after all those kills reads it.
	st, _ := settings.OpenStore(file)
	if err := st.Update(context.Background(), func(*settings.Settings) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
}

// helperWriteLoop rewrites the settings file as fast as it can, with contents of
// changing size.
func helperWriteLoop() int {
	st, _ := settings.OpenStore(os.Getenv("LAKEBASE_HELPER_FILE"))
	for i := 0; ; i++ {
		err := st.Update(context.Background(), func(s *settings.Settings) (bool, error) {
			s.Tokens["w|c|s"] = &settings.StoredToken{AccessToken: strings.Repeat("a", 1000+(i%50)*400), RefreshToken: fmt.Sprint(i)}
			return true, nil
		})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if i == 0 {
			fmt.Println("ready")
		}
	}
}

// TestSettingsFile_EightProcessesShareRotatingRefreshTokens: 8 processes refresh one stored
// login through one settings file (10 times each; 50 with LAKEBASE_LONG) with
// rotation and reuse detection on. No refresh token is ever redeemed twice.
func TestSettingsFile_EightProcessesShareRotatingRefreshTokens(t *testing.T) {
	needServers(t)
	sharedRefreshRun(t, 8, pick(10, 50))
}

func sharedRefreshRun(t *testing.T, procs, perProcess int) {
	sharedRefreshRunAt(t, filepath.Join(t.TempDir(), "shared.json"), procs, perProcess)
}

// sharedRefreshRunAt runs the shared-refresh processes on the store at file (a
// path or a keyring:// location).
func sharedRefreshRunAt(t *testing.T, file string, procs, perProcess int) {
	emu.SetTokenLifetime(time.Second) // every use needs a refresh
	t.Cleanup(func() { emu.SetTokenLifetime(time.Hour) })
	rt := userRefreshToken(t)
	seed, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthRefreshToken="+rt, "OAuthSettingsLocation="+file))
	currentUser(t, seed)
	emu.ResetCounts()

	dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file)
	var wg sync.WaitGroup
	outs := make([]string, procs)
	errs := make([]error, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=refresh-loop", "LAKEBASE_HELPER_DSN="+dsn, fmt.Sprintf("LAKEBASE_HELPER_N=%d", perProcess))
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range procs {
		if errs[i] != nil || !strings.Contains(outs[i], "helper ok") {
			t.Fatalf("process %d: %v (reuse detected %d times)\n%s", i, errs[i], emu.Count("refresh.reuse_detected"), outs[i])
		}
	}
	if n := emu.Count("refresh.reuse_detected"); n != 0 {
		t.Fatalf("reuse detection tripped %d times", n)
	}
	if n := emu.Count("token:refresh_token"); n < int64(perProcess) {
		t.Fatalf("only %d refreshes happened; the test did not exercise rotation", n)
	}
	t.Logf("%d refreshes across %d processes, no reuse", emu.Count("token:refresh_token"), procs)
}

// --- security ---
