package main

import (
	"github.com/lakebase-go/lakebase/internal/testenv"

	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCommand_AgainstLakebaseLocal builds lakebase and lakebase-local, starts the
// emulator as a process, and runs the subcommands as processes against it.
func TestCommand_AgainstLakebaseLocal(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := t.TempDir()
	for _, pkg := range []string{".", "../lakebase-local"} {
		out := filepath.Join(dir, filepath.Base(filepath.Clean(pkg)))
		if pkg == "." {
			out = filepath.Join(dir, "lakebase")
		}
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	local := exec.Command(filepath.Join(dir, "lakebase-local"))
	stdout, _ := local.StdoutPipe()
	if err := local.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		local.Process.Signal(syscall.SIGTERM)
		local.Wait()
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var info struct {
		DSN      string `json:"dsn_oauthclient"`
		ClientID string `json:"client_id"`
	}
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &info); err != nil || info.DSN == "" {
			t.Fatalf("lakebase-local printed %q", line)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("lakebase-local did not start")
	}

	lakebase := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(dir, "lakebase"), args...)
		cmd.Env = append(os.Environ(), "LAKEBASE_DSN="+info.DSN)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := lakebase("status"); err != nil || !strings.Contains(out, info.ClientID) {
		t.Fatalf("lakebase status: %v\n%s", err, out)
	}
	if out, err := lakebase("token", "-bare"); err != nil || len(strings.TrimSpace(out)) < 20 {
		t.Fatalf("lakebase token: %v", err)
	}
	if out, err := lakebase("psql", "-XAtc", "SELECT current_user"); err != nil || strings.TrimSpace(out) != info.ClientID {
		t.Fatalf("lakebase psql: %v\n%s", err, out)
	}

	// A branch for a CI run: create, use with psql -branch, list, gc by prefix.
	if out, err := lakebase("psql", "-XAtc", "CREATE TABLE ci_data AS SELECT 41 AS v"); err != nil {
		t.Fatalf("psql create: %v\n%s", err, out)
	}
	out, err := lakebase("branch", "create", "-name", "pr-17", "-ttl", "1h")
	if err != nil || strings.TrimSpace(out) != "Project=lakebase;Branch=pr-17" {
		t.Fatalf("branch create: %v\n%s", err, out)
	}
	if out, err := lakebase("branch", "create", "-name", "pr-18", "-export"); err != nil || !strings.HasPrefix(out, "LAKEBASE_ENDPOINT=projects/lakebase/branches/pr-18/endpoints/") {
		t.Fatalf("branch create -export: %v\n%s", err, out)
	}
	if out, err := lakebase("psql", "-branch", "pr-17", "-XAtc", "UPDATE ci_data SET v = v + 1 RETURNING v"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "42") {
		t.Fatalf("psql -branch: %v\n%s", err, out)
	}
	if out, err := lakebase("psql", "-XAtc", "SELECT v FROM ci_data"); err != nil || strings.TrimSpace(out) != "41" {
		t.Fatalf("the branch's write reached the parent: %v\n%s", err, out)
	}
	if out, err := lakebase("branch", "list"); err != nil || !strings.Contains(out, "branches/pr-17") || !strings.Contains(out, "(default)") {
		t.Fatalf("branch list: %v\n%s", err, out)
	}
	if out, err := lakebase("branch", "gc", "-prefix", "pr-"); err != nil || strings.Count(out, "deleted") != 2 {
		t.Fatalf("branch gc: %v\n%s", err, out)
	}
	if out, err := lakebase("psql", "-branch", "pr-17", "-XAtc", "SELECT 1"); err == nil || !strings.Contains(out, "does not exist") {
		t.Fatalf("psql on a deleted branch: %v\n%s", err, out)
	}
}
