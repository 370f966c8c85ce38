//go:build unix

package lakebase_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

// The reproduction of a fleet whose credential lock's holder was stopped (SIGSTOP,
// ^Z, a debugger) while it held the lock: the seven other processes on the store
// each log in and query — with the default Timeout and with Timeout=0 — by going on
// without the lock once the holder's lease lapses. Before the lease, each failed at
// its Timeout with a bare "context deadline exceeded" (or, with Timeout=0, waited
// for as long as the caches allow).
func TestFleet_StoppedCredentialLockHolderDoesNotFailTheOthers(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"default Timeout", nil},
		{"Timeout=0", []string{"Timeout=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "settings.json")
			dsn := e.OAuthClientDSN(append([]string{"OAuthSettingsLocation=" + file}, tc.extra...)...)

			holder := exec.Command(os.Args[0], "-test.run=^$")
			holder.Env = append(os.Environ(), "LAKEBASE_HELPER=hold-store-lock", "LAKEBASE_HELPER_STORE="+file,
				"LAKEBASE_HELPER_LOCK=credential") // the lock the pipeline mints under
			holder.Stderr = os.Stderr
			stdin, _ := holder.StdinPipe()
			stdout, _ := holder.StdoutPipe()
			if err := holder.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if holder.ProcessState == nil {
					holder.Process.Kill() // a stopped process too
					holder.Wait()
				}
			}()
			out := bufio.NewReader(stdout)
			if line, err := out.ReadString('\n'); strings.TrimSpace(line) != "holding" {
				t.Fatalf("the holder did not take the lock: %q %v", line, err)
			}
			// The lease of the pipeline's credential lock names the holder: the
			// others are waiting on this very lock.
			pid := holder.Process.Pid
			if lease, _ := os.ReadFile(file + ".credential.lock.lease"); !strings.Contains(string(lease), "pid="+strconv.Itoa(pid)+" ") {
				t.Fatalf("the credential lock's lease does not name the holder %d: %q", pid, lease)
			}
			if err := holder.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}

			var wg sync.WaitGroup
			errs := make(chan error, 7)
			for range 7 {
				wg.Go(func() {
					cmd := exec.Command(os.Args[0], "-test.run=^$")
					cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=query-once", "LAKEBASE_HELPER_DSN="+dsn)
					if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "query ok") {
						errs <- fmt.Errorf("process: %v\n%s", err, out)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}

			// Resumed, the holder lets go as usual.
			if err := holder.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			io.WriteString(stdin, "go\n")
			rest, _ := io.ReadAll(out)
			if err := holder.Wait(); err != nil || !strings.Contains(string(rest), "released") {
				t.Fatalf("the resumed holder: %v\n%s", err, rest)
			}
			queryInProcess(t, dsn) // the store the fleet wrote is whole and used
		})
	}
}
