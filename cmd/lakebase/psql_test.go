//go:build !windows

package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// fakePsql writes a shell script that stands in for psql.
func fakePsql(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "psql")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// psql gets the caller's environment without any PG* variable and without the
// driver's and Databricks' secrets; a PGSERVICE of the caller (libpq's service file
// wins over variables) cannot send the credential elsewhere.
func TestPsql_GetsNoPGVariablesAndNoSecrets(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	dsn := emu.OAuthClientDSN()

	// A server that must never be reached.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	services := filepath.Join(t.TempDir(), "pg_service.conf")
	port := ln.Addr().(*net.TCPAddr).Port
	os.WriteFile(services, []byte(fmt.Sprintf("[evil]\nhost=127.0.0.1\nport=%d\nsslmode=disable\n", port)), 0o600)
	t.Setenv("PGSERVICE", "evil")
	t.Setenv("PGSERVICEFILE", services)
	t.Setenv("PGHOSTADDR", "127.0.0.1")
	t.Setenv("PGPASSFILE", "/nonexistent/pgpass")
	t.Setenv("PGSSLMODE", "disable")
	t.Setenv("LAKEBASE_DSN", dsn)
	t.Setenv("DATABRICKS_CLIENT_SECRET", "dbx-client-secret-value")
	t.Setenv("DATABRICKS_TOKEN", "dapi-token-value")
	t.Setenv("KEEP_ME", "yes")

	envFile := filepath.Join(t.TempDir(), "env")
	t.Setenv("PSQL", fakePsql(t, `env > "`+envFile+`"`))
	if _, e, code := lakebaseCmd(t, dsn, nil, "psql"); code != 0 {
		t.Fatalf("lakebase psql with a fake psql (%d): %s", code, e)
	}
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for _, gone := range []string{"PGSERVICE", "PGHOSTADDR", "PGPASSFILE", "LAKEBASE_DSN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_TOKEN"} {
		if _, ok := env[gone]; ok {
			t.Errorf("psql's environment holds %s", gone)
		}
	}
	if env["PGSERVICEFILE"] != os.DevNull || env["PGSSLMODE"] != "verify-full" || env["PGPASSWORD"] == "" || env["KEEP_ME"] != "yes" {
		t.Errorf("psql's environment: PGSERVICEFILE=%q PGSSLMODE=%q PGPASSWORD set=%v KEEP_ME=%q",
			env["PGSERVICEFILE"], env["PGSSLMODE"], env["PGPASSWORD"] != "", env["KEEP_ME"])
	}
	if strings.Contains(string(data), emu.ServicePrincipal.ClientSecret) {
		t.Error("psql's environment holds the client secret")
	}

	// The real psql, with the caller's PGSERVICE still set: it logs in to Lakebase.
	os.Unsetenv("PSQL")
	if o, e, code := lakebaseCmd(t, dsn, nil, "psql", "-XAtc", "SELECT current_user"); code != 0 || strings.TrimSpace(o) != emu.ServicePrincipal.ClientID {
		t.Fatalf("psql with PGSERVICE set (%d): %q %s", code, o, e)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the service file's server was reached %d times", n)
	}
}

// A leading -- ends lakebase's own flags and is not passed on to psql.
func TestPsql_DoubleDashEndsLakebaseFlags(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	if o, e, code := lakebaseCmd(t, emu.OAuthClientDSN(), nil, "psql", "--", "-XAtc", "SELECT 41+1"); code != 0 || strings.TrimSpace(o) != "42" {
		t.Fatalf("lakebase psql -- -XAtc (%d): %q %s", code, o, e)
	}
}

// When psql dies from signal n, lakebase psql exits 128+n, as a shell reports it.
func TestPsql_ExitsWith128PlusTheSignalThatEndedPsql(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	t.Setenv("PSQL", fakePsql(t, "kill -TERM $$"))
	if _, e, code := lakebaseCmd(t, emu.OAuthClientDSN(), nil, "psql"); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %d, want %d: %s", code, 128+int(syscall.SIGTERM), e)
	}
}

// Ctrl-C at the terminal (SIGINT to the foreground process group) during a query
// lets psql cancel the query, as plain psql does: the server stops it, psql reports
// it, and lakebase exits with psql's status.
func TestPsql_CtrlCCancelsTheRunningQuery(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	dsn := emu.OAuthClientDSN()
	bin := filepath.Join(t.TempDir(), "lakebase")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, "psql", "-Xc", "SELECT pg_sleep(300)")
	cmd.Env = append(os.Environ(), "LAKEBASE_DSN="+dsn)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, as a terminal's foreground job
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	db, err := sql.Open("lakebase", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	running := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(300)' AND state = 'active'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for running() == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the query never started: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("lakebase psql after Ctrl-C: %v, want psql's exit 1\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "canceling statement due to user request") {
		t.Fatalf("psql did not cancel the query:\n%s", stderr.String())
	}
	for running() != 0 {
		if ctx.Err() != nil {
			t.Fatal("the query kept running on the server")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// For an identity without a Postgres role, lakebase status tries the login, says
// the role is missing (naming the identity and lakebase role create) and exits
// non-zero; lakebase psql says the same and never starts psql (which would show a
// bare "password authentication failed"). With the role, both work.
func TestCommand_StatusAndPsqlSayTheIdentityHasNoRole(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	const app = "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c"
	if err := emu.AddServicePrincipal(app, "app-secret"); err != nil {
		t.Fatal(err)
	}
	if err := emu.DropRole(app); err != nil {
		t.Fatal(err)
	}
	dsn := emu.OAuthClientDSN("OAuthClientId="+app, "OAuthClientSecret=app-secret")
	ran := filepath.Join(t.TempDir(), "ran")
	t.Setenv("PSQL", fakePsql(t, `touch "`+ran+`"`))

	out, e, code := lakebaseCmd(t, dsn, nil, "status")
	if code == 0 || !strings.Contains(e, "has no Postgres role") || !strings.Contains(e, "lakebase role create "+app) ||
		!strings.Contains(out, "login:") || !strings.Contains(out, "user:              "+app) {
		t.Fatalf("status without a role (%d):\n%s\n%s", code, out, e)
	}
	if _, e, code := lakebaseCmd(t, dsn, nil, "psql", "-c", "SELECT 1"); code == 0 ||
		!strings.Contains(e, "has no Postgres role") || !strings.Contains(e, "lakebase role create "+app) {
		t.Fatalf("psql without a role (%d): %s", code, e)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("psql was started for an identity without a role")
	}

	if err := emu.CreateRole(app); err != nil {
		t.Fatal(err)
	}
	if out, e, code := lakebaseCmd(t, dsn, nil, "status"); code != 0 || !strings.Contains(out, "login:             ok") {
		t.Fatalf("status with the role (%d):\n%s\n%s", code, out, e)
	}
	if _, e, code := lakebaseCmd(t, dsn, nil, "psql", "-c", "SELECT 1"); code != 0 {
		t.Fatalf("psql with the role (%d): %s", code, e)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Fatal("psql was not started for an identity with a role")
	}
}
