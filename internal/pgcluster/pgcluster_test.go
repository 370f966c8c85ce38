//go:build !windows

package pgcluster

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The cluster is not open to other local users: its socket is in a 0700 directory
// (the CA certificate elsewhere), logins there are peer logins of this OS user as
// the roles CreateRole made, and another OS user cannot reach it at all.
func TestCluster_SocketIsPrivateAndNeedsPeerLogins(t *testing.T) {
	if os.Getenv(EnvServer) != "" {
		t.Skip("an external server is not this package's to secure")
	}
	if _, err := FindBinDir(); err != nil {
		t.Skip("no PostgreSQL server binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	fi, err := os.Stat(c.SocketDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if filepath.Dir(c.CAFile) == c.SocketDir {
		t.Fatal("the CA file is in the socket directory")
	}
	if data, _ := os.ReadFile(filepath.Join(c.SocketDir, "data", "pg_hba.conf")); strings.Contains(string(data), "trust") {
		t.Fatalf("pg_hba.conf trusts logins:\n%s", data)
	}
	if err := c.CreateRole(ctx, "mapped_role", "", ""); err != nil {
		t.Fatal(err)
	}
	if pc, err := pgconn.Connect(ctx, c.TrustedConnString("mapped_role", "postgres")); err != nil {
		t.Fatalf("a role made by CreateRole cannot log in over the socket: %v", err)
	} else {
		pc.Close(ctx)
	}
	if err := c.Exec(ctx, "", "CREATE ROLE sneaky LOGIN SUPERUSER"); err != nil {
		t.Fatal(err)
	}
	if pc, err := pgconn.Connect(ctx, c.TrustedConnString("sneaky", "postgres")); err == nil {
		pc.Close(ctx)
		t.Fatal("a role not mapped for peer logins logged in over the socket without a password")
	}

	// Another OS user cannot reach the socket.
	other := "nobody"
	if os.Geteuid() != 0 {
		t.Logf("not root: the check as another OS user needs root")
		return
	}
	u, err := user.Lookup(other)
	if err != nil {
		t.Skipf("no %s user", other)
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		if bin, berr := FindBinDir(); berr == nil {
			psql = filepath.Join(bin, "psql")
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(psql, "-XAtc", "SELECT 1", c.AdminConnString("postgres"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("OS user %s logged in as postgres over the socket: %s", other, out)
	}
	if !strings.Contains(string(out), "ermission denied") && !strings.Contains(string(out), "No such file") {
		t.Logf("refused as %s: %s", other, out)
	}
}
