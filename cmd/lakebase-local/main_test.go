//go:build !windows

package main

import (
	"github.com/lakebase-go/lakebase/internal/testenv"

	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type info struct {
	Workspace    string   `json:"workspace"`
	Server       string   `json:"server"`
	Port         int      `json:"port"`
	Database     string   `json:"database"`
	CAFile       string   `json:"ca_file"`
	Endpoint     string   `json:"endpoint"`
	Instance     string   `json:"instance"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	User         string   `json:"user"`
	PostgresPID  int      `json:"postgres_pid"`
	TempDirs     []string `json:"temp_dirs"`
	PooledPort   int      `json:"pooled_port"`
	NoRoleID     string   `json:"norole_client_id"`
	WorkspaceID  string   `json:"workspace_id"`
	NoRoleSecret string   `json:"norole_client_secret"`
	PgBouncerPID int      `json:"pgbouncer_pid"`
	DataDir      string   `json:"data_dir"`
	Reused       []string `json:"reused"`
	ControlURL   string   `json:"control_url"`
	ControlToken string   `json:"control_token"`
}

// TestLakebaseLocal_PsqlThroughItThenCleanStop runs the command, mints a credential
// the way the README's curl lines do, logs in with psql, and stops it with SIGTERM.
func TestLakebaseLocal_PsqlThroughItThenCleanStop(t *testing.T) {
	testenv.NeedPostgres(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql is needed (Debian: apt-get install -y postgresql-client)")
	}
	bin := buildLocal(t)
	cmd, in, stderr := startLocal(t, bin, "-credential-lifetime", "10m")
	for name, v := range map[string]string{"workspace": in.Workspace, "server": in.Server, "database": in.Database,
		"ca_file": in.CAFile, "endpoint": in.Endpoint, "instance": in.Instance, "client_id": in.ClientID,
		"client_secret": in.ClientSecret, "user": in.User} {
		if v == "" {
			t.Fatalf("JSON field %s is empty", name)
		}
	}

	cred := mintCredential(t, in)
	conn := "host=" + in.Server + " port=" + strconv.Itoa(in.Port) + " dbname=" + in.Database +
		" user=" + in.ClientID + " sslmode=verify-full sslrootcert=" + in.CAFile
	ps := exec.Command(psql, conn, "-XAtc", "SELECT current_user")
	ps.Env = append(os.Environ(), "PGPASSWORD="+cred)
	out, err := ps.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != in.ClientID {
		t.Fatalf("psql: %v: %s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lakebase-local did not stop on SIGTERM")
	}
	if in.PostgresPID != 0 {
		if err := syscall.Kill(in.PostgresPID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("PostgreSQL (pid %d) still runs after stop: %v", in.PostgresPID, err)
		}
	}
	for _, d := range in.TempDirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temp dir %s left behind (%v)", d, err)
		}
	}
}

// buildLocal builds lakebase-local into the test's temporary directory.
func buildLocal(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lakebase-local")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// mintCredential gets a database credential for the service principal the way the
// README's curl lines do.
func mintCredential(t *testing.T, in info) string {
	t.Helper()
	// Where OIDC lives and the workspace id, from the host's metadata (a unified host
	// serves OIDC at the account's path and wants the id on every call).
	var meta struct {
		OIDC        string `json:"oidc_endpoint"`
		WorkspaceID string `json:"workspace_id"`
		AccountID   string `json:"account_id"`
	}
	req, _ := http.NewRequest("GET", in.Workspace+"/.well-known/databricks-config", nil)
	mustDo(t, req, &meta)
	oidc := strings.ReplaceAll(meta.OIDC, "{account_id}", meta.AccountID)
	// curl -u "$client_id:$client_secret" -d grant_type=client_credentials -d scope=all-apis $workspace/oidc/v1/token
	req, _ = http.NewRequest("POST", oidc+"/v1/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"all-apis"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(in.ClientID, in.ClientSecret)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	mustDo(t, req, &tok)
	// curl -H "Authorization: Bearer $token" -d '{"endpoint":"..."}' $workspace/api/2.0/postgres/credentials
	body, _ := json.Marshal(map[string]string{"endpoint": in.Endpoint})
	req, _ = http.NewRequest("POST", in.Workspace+"/api/2.0/postgres/credentials", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("X-Databricks-Workspace-Id", meta.WorkspaceID)
	var cred struct {
		Token string `json:"token"`
	}
	mustDo(t, req, &cred)
	return cred.Token
}

// -pooler serves the endpoint's pooled host on pooled_port: a real PgBouncer that
// psql logs in through with a credential; with -pooler-auth=password the same login
// gets PgBouncer's refusal. SIGTERM stops the pooler too.
func TestLakebaseLocal_PoolerOnPooledPort(t *testing.T) {
	testenv.NeedPgBouncer(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql is needed (Debian: apt-get install -y postgresql-client)")
	}
	bin := buildLocal(t)
	if out, err := exec.Command(bin, "-pooler", "-pooler-auth", "sometimes").CombinedOutput(); err == nil || !strings.Contains(string(out), "-pooler-auth must be any or password") {
		t.Fatalf("-pooler-auth=sometimes: %v: %s", err, out)
	}
	for _, auth := range []string{"any", "password"} {
		cmd, in, stderr := startLocal(t, bin, "-pooler", "-pooler-auth", auth)
		if in.PooledPort == 0 || in.PooledPort == in.Port || in.PgBouncerPID == 0 {
			t.Fatalf("-pooler: pooled_port %d (port %d), pgbouncer_pid %d", in.PooledPort, in.Port, in.PgBouncerPID)
		}
		conn := "host=" + in.Server + " port=" + strconv.Itoa(in.PooledPort) + " dbname=" + in.Database +
			" user=" + in.ClientID + " sslmode=verify-full sslrootcert=" + in.CAFile
		ps := exec.Command(psql, conn, "-XAtc", "SELECT current_user")
		ps.Env = append(os.Environ(), "PGPASSWORD="+mintCredential(t, in))
		out, err := ps.CombinedOutput()
		if auth == "any" && (err != nil || strings.TrimSpace(string(out)) != in.ClientID) {
			t.Fatalf("psql through the pooled host: %v: %s", err, out)
		}
		if auth == "password" && (err == nil || !strings.Contains(string(out), "password authentication failed")) {
			t.Fatalf("psql with a credential through a password-only pooler: %v: %s", err, out)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
		if err := syscall.Kill(in.PgBouncerPID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("PgBouncer (pid %d) still runs after stop: %v", in.PgBouncerPID, err)
		}
	}
}

// -sp-without-role adds a service principal whose role is missing: its credential is
// refused exactly as the service refuses it. (With -unified-host too: workspace
// calls must name the workspace.)
func TestLakebaseLocal_SPWithoutRoleOnAUnifiedHost(t *testing.T) {
	testenv.NeedPostgres(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql is needed (Debian: apt-get install -y postgresql-client)")
	}
	bin := buildLocal(t)
	cmd, in, _ := startLocal(t, bin, "-sp-without-role", "-unified-host")
	defer cmd.Process.Signal(syscall.SIGTERM)
	// -unified-host: a workspace call without the workspace id is refused.
	req, _ := http.NewRequest("GET", in.Workspace+"/api/2.0/postgres/"+in.Endpoint, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a call without X-Databricks-Workspace-Id on a unified host: %v %v", resp, err)
	}
	if in.WorkspaceID == "" {
		t.Fatal("no workspace_id in the JSON line")
	}
	if in.NoRoleID == "" || in.NoRoleSecret == "" || in.NoRoleID == in.ClientID {
		t.Fatalf("norole_client_id %q", in.NoRoleID)
	}
	norole := in
	norole.ClientID, norole.ClientSecret = in.NoRoleID, in.NoRoleSecret
	conn := "host=" + in.Server + " port=" + strconv.Itoa(in.Port) + " dbname=" + in.Database +
		" user=" + in.NoRoleID + " sslmode=verify-full sslrootcert=" + in.CAFile
	ps := exec.Command(psql, conn, "-XAtc", "SELECT 1")
	ps.Env = append(os.Environ(), "PGPASSWORD="+mintCredential(t, norole))
	out, err := ps.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "password authentication failed for user '"+in.NoRoleID+"'") {
		t.Fatalf("psql as the service principal without a role: %v: %s", err, out)
	}
}

func mustDo(t *testing.T, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", req.URL.Path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// startLocal starts the built lakebase-local and reads its JSON line.
func startLocal(t *testing.T, bin string, args ...string) (*exec.Cmd, info, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var in info
	select {
	case line, ok := <-lines:
		if !ok || json.Unmarshal([]byte(line), &in) != nil {
			t.Fatalf("no JSON line; stderr:\n%s", stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("lakebase-local did not print its JSON line")
	}
	return cmd, in, &stderr
}

// A lakebase-local killed with SIGKILL leaves its temporary directories (with the
// server key); the next one removes them at start. SIGHUP (a closed terminal) stops
// it cleanly, leaving nothing.
func TestLakebaseLocal_KilledInstancesAreSweptAndSIGHUPStopsCleanly(t *testing.T) {
	testenv.NeedPostgres(t)
	bin := buildLocal(t)
	killed, first, _ := startLocal(t, bin)
	killed.Process.Signal(syscall.SIGKILL)
	killed.Wait()
	if len(first.TempDirs) < 2 {
		t.Fatalf("temp dirs %v", first.TempDirs)
	}
	for _, d := range first.TempDirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("the killed instance's %s is already gone: the test proves nothing", d)
		}
	}
	if first.PostgresPID != 0 { // its PostgreSQL dies with it (parent-death signal)
		deadline := time.Now().Add(30 * time.Second)
		for syscall.Kill(first.PostgresPID, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	second, next, _ := startLocal(t, bin)
	for _, d := range first.TempDirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the killed instance's %s is still there after the next start (%v)", d, err)
		}
	}
	if err := second.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("after SIGHUP: %v", err)
	}
	for _, d := range next.TempDirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after SIGHUP (%v)", d, err)
		}
	}
}

// freePorts returns n loopback ports free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// -data-dir with -port and -pg-port: the ports are the ones given; a second
// instance on the directory is refused naming the first's process; killed (its
// lock left behind) and started again without the port flags, it serves the same
// workspace, port, CA file and client secret, says what it reused, and the data
// written before is there.
func TestLakebaseLocal_DataDirKeepsPortsSecretAndData(t *testing.T) {
	testenv.NeedPostgres(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql is needed (Debian: apt-get install -y postgresql-client)")
	}
	bin := buildLocal(t)
	base, err := os.MkdirTemp("", "lakebase-local-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o711) // PostgreSQL's user passes through when the test runs as root
	dir := filepath.Join(base, "data")
	ports := freePorts(t, 2)
	first, in, _ := startLocal(t, bin, "-data-dir", dir, "-port", strconv.Itoa(ports[0]), "-pg-port", strconv.Itoa(ports[1]))
	if in.Port != ports[1] || in.Workspace != "http://127.0.0.1:"+strconv.Itoa(ports[0]) || in.DataDir != dir || in.Reused == nil || len(in.Reused) != 0 {
		t.Fatalf("first start: %+v", in)
	}
	psqlAs := func(in info, sql string) string {
		t.Helper()
		conn := "host=" + in.Server + " port=" + strconv.Itoa(in.Port) + " dbname=" + in.Database +
			" user=" + in.ClientID + " sslmode=verify-full sslrootcert=" + in.CAFile
		ps := exec.Command(psql, conn, "-XAtc", sql)
		ps.Env = append(os.Environ(), "PGPASSWORD="+mintCredential(t, in))
		out, err := ps.CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q: %v: %s", sql, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	psqlAs(in, "CREATE TABLE notes (v text); INSERT INTO notes VALUES ('kept')")

	out, err := exec.Command(bin, "-data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by process "+strconv.Itoa(first.Process.Pid)) {
		t.Fatalf("a second instance on the data directory: %v: %s", err, out)
	}

	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	if in.PostgresPID != 0 { // its PostgreSQL dies with it (parent-death signal)
		deadline := time.Now().Add(30 * time.Second)
		for syscall.Kill(in.PostgresPID, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	again, next, stderr := startLocal(t, bin, "-data-dir", dir)
	if next.Workspace != in.Workspace || next.Port != in.Port || next.CAFile != in.CAFile || next.ClientSecret != in.ClientSecret ||
		!strings.Contains(strings.Join(next.Reused, ","), "postgres_data") {
		t.Fatalf("after a restart: %+v\nbefore: %+v", next, in)
	}
	if got := psqlAs(next, "SELECT v FROM notes"); got != "kept" {
		t.Fatalf("the data after a restart: %q", got)
	}
	// The compute restarted through the control endpoint of the JSON line keeps the data too.
	req, _ := http.NewRequest("POST", next.ControlURL+"/restart?downtime=100ms", nil)
	req.Header.Set("Authorization", "Bearer "+next.ControlToken)
	var res map[string]string
	mustDo(t, req, &res)
	if got := psqlAs(next, "SELECT v FROM notes"); got != "kept" {
		t.Fatalf("the data after a compute restart: %q", got)
	}
	again.Process.Signal(syscall.SIGTERM)
	if err := again.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Fatalf("the data directory after a clean stop: %v", err)
	}
}

// Ctrl-C (or SIGTERM) while the first start on a new -data-dir is under way
// (PostgreSQL's initdb takes seconds) stops it cleanly once it has started,
// instead of killing it midway: a directory left with PostgreSQL's data and no
// state would be refused as damaged at every start after.
func TestLakebaseLocal_SignalDuringTheFirstStartLeavesAUsableDataDir(t *testing.T) {
	testenv.NeedPostgres(t)
	bin := buildLocal(t)
	base, err := os.MkdirTemp("", "lakebase-local-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o711) // PostgreSQL's user passes through when the test runs as root
	dir := filepath.Join(base, "data")
	cmd := exec.Command(bin, "-data-dir", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// The start is under way once the directory has its VERSION.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "VERSION")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the data directory got no VERSION; stderr:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGINT during the first start: %v\n%s", err, stderr.String())
	}
	again, _, stderr2 := startLocal(t, bin, "-data-dir", dir)
	again.Process.Signal(syscall.SIGTERM)
	if err := again.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr2.String())
	}
}

// SIGTERM while a restart asked through the control endpoint keeps the compute
// down (here for the longest downtime it takes, 10 minutes) stops lakebase-local
// at once, cleanly, rather than after the downtime; the control request is
// answered with an error.
func TestLakebaseLocal_SIGTERMDuringAControlRestartStopsIt(t *testing.T) {
	testenv.NeedPostgres(t)
	bin := buildLocal(t)
	cmd, in, stderr := startLocal(t, bin)
	if in.PostgresPID == 0 {
		t.Fatal("no postgres_pid in the JSON line")
	}
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", in.ControlURL+"/restart?downtime=10m", nil)
		req.Header.Set("Authorization", "Bearer "+in.ControlToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	// The downtime has begun once the compute's PostgreSQL is gone.
	deadline := time.Now().Add(90 * time.Second)
	for syscall.Kill(in.PostgresPID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the compute's PostgreSQL did not stop for the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM during a restart: %v\n%s", err, stderr.String())
		}
	case <-time.After(3 * time.Minute): // against a 10-minute downtime
		t.Fatal("lakebase-local waited for the restart's downtime before stopping")
	}
	if code := <-answered; code == http.StatusOK {
		t.Error("the restart cut short by SIGTERM was answered 200")
	}
	for _, d := range in.TempDirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after SIGTERM during a restart (%v)", d, err)
		}
	}
}
