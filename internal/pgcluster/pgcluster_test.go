//go:build !windows

package pgcluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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

	"github.com/lakebase-go/lakebase/internal/tempdir"
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

// The standby is a hot standby of its primary: in recovery, refusing writes whatever
// the session sets, replaying the primary's roles and data, taking the peer logins
// of roles made after it started; Stop stops it with its primary and removes its
// files.
func TestCluster_StandbyReplaysRefusesWritesAndStopsWithItsPrimary(t *testing.T) {
	if os.Getenv(EnvServer) != "" {
		t.Skip("an external server has no standby of this package's")
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
	if c.RunningStandby() != nil {
		t.Fatal("a standby runs before its first use")
	}
	if err := c.CreateRole(ctx, "before_standby", "", ""); err != nil {
		t.Fatal(err)
	}
	sb, err := c.Standby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Standby(ctx); err != nil || again != sb {
		t.Fatalf("a second Standby: %p, %v; want the same %p", again, err, sb)
	}
	if dir, port, ok := c.StandbySocket(); !ok || dir != sb.SocketDir || port != sb.Port {
		t.Fatalf("StandbySocket %s %d %v, the standby's %s %d", dir, port, ok, sb.SocketDir, sb.Port)
	}
	if err := c.CreateRole(ctx, "after_standby", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "", "CREATE TABLE t (v int); INSERT INTO t VALUES (1); GRANT ALL ON t TO after_standby"); err != nil {
		t.Fatal(err)
	}
	if err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"before_standby", "after_standby"} {
		pc, err := pgconn.Connect(ctx, sb.TrustedConnString(role, "postgres"))
		if err != nil {
			t.Fatalf("role %s on the standby: %v", role, err)
		}
		pc.Close(ctx)
	}
	pc, err := pgconn.Connect(ctx, sb.TrustedConnString("after_standby", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := pc.Exec(ctx, "SELECT pg_is_in_recovery(), (SELECT count(*) FROM t)").ReadAll()
	if err != nil || string(res[0].Rows[0][0]) != "t" || string(res[0].Rows[0][1]) != "1" {
		t.Fatalf("on the standby: %v, %v", res, err)
	}
	_, err = pc.Exec(ctx, "SET default_transaction_read_only = off; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; INSERT INTO t VALUES (2)").ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("a write on the standby: %v", err)
	}
	pc.Close(ctx)

	pid := sb.Pid()
	c.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the standby (pid %d) runs after Stop: %v", pid, err)
	}
	if _, err := os.Stat(sb.SocketDir); !os.IsNotExist(err) {
		t.Fatalf("the standby's directory after Stop: %v", err)
	}
	if _, err := c.Standby(ctx); err == nil {
		t.Fatal("a stopped cluster started a standby")
	}
}

// A standby dies with the process that started it (SIGKILL: no Stop runs), as its
// primary does, and its files go with the primary's directory at the next sweep.
func TestCluster_StandbyDiesWithItsOwner(t *testing.T) {
	if os.Getenv("PGCLUSTER_HELPER") == "standby" {
		ctx := context.Background()
		c, err := Start(ctx)
		if err != nil {
			fmt.Println("ERROR", err)
			return
		}
		sb, err := c.Standby(ctx)
		if err != nil {
			fmt.Println("ERROR", err)
			return
		}
		fmt.Println(c.Pid(), sb.Pid(), c.Dir())
		select {} // until killed
	}
	if os.Getenv(EnvServer) != "" {
		t.Skip("an external server has no standby of this package's")
	}
	if _, err := FindBinDir(); err != nil {
		t.Skip("no PostgreSQL server binaries")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCluster_StandbyDiesWithItsOwner$")
	cmd.Env = append(os.Environ(), "PGCLUSTER_HELPER=standby")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var primary, standby int
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscan(sc.Text(), &primary, &standby, &dir); err == nil {
			break
		}
		if strings.HasPrefix(sc.Text(), "ERROR") {
			t.Fatal(sc.Text())
		}
	}
	if primary == 0 || standby == 0 || dir == "" {
		t.Fatalf("the helper printed no pids (%v)", sc.Err())
	}
	// While its owner lives, nothing sweeps it; after, anyone's sweep may.
	if _, err := os.Stat(filepath.Join(dir, "standby", "data")); err != nil {
		t.Fatalf("the standby's data is not in its primary's directory: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for _, pid := range []int{primary, standby} {
		deadline := time.Now().Add(60 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("postgres (pid %d) still runs a minute after its owner was killed", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tempdir.Sweep("lakebase-pg-")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the killed owner's directory (with the standby's) after a sweep: %v", err)
	}
}

// StartIn writes nothing through a symbolic link in the cluster's root, where the
// server's user (the owner of that directory when this process is root) could
// plant one: not the log, not the server key or certificate, not the peer map.
// The files the links point to are left as they were.
func TestStartIn_WritesNothingThroughALink(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		t.Skip("no PostgreSQL server binaries")
	}
	base, err := os.MkdirTemp("", "lakebase-startin-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o711); err != nil { // PostgreSQL's user passes through when this is root
		t.Fatal(err)
	}
	root := filepath.Join(base, "pg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartIn(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres.log", "server.key", "server.crt", "data/pg_ident.conf"} {
		t.Run(name, func(t *testing.T) {
			victim := filepath.Join(base, "victim")
			if err := os.WriteFile(victim, []byte("not the cluster's\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(root, filepath.FromSlash(name))
			saved, err := os.ReadFile(link)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(link)
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			// As one planted after the emulator's own checks: the write itself must
			// not follow it.
			c, err := StartIn(ctx, root)
			if err == nil {
				c.Stop()
			}
			if b, _ := os.ReadFile(victim); string(b) != "not the cluster's\n" {
				t.Errorf("%s: the link's target was written: %q", name, b)
			}
			if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
				return // replaced by a file of its own: fine
			}
			os.Remove(link)
			if err := os.WriteFile(link, saved, 0o600); err != nil {
				t.Fatal(err)
			}
			if cred, _ := runAs(); cred != nil {
				os.Lchown(link, int(cred.Uid), int(cred.Gid))
			}
		})
	}
}

// CheckPassword gives a password only to the cluster's own server: whoever holds
// its TCP port while the server is down (a compute restart's downtime leaves the
// port free to any local user) and asks for the password in clear gets nothing.
// Against the real server it still tells a right password from a wrong one.
func TestCheckPassword_GivesThePasswordOnlyToTheClustersOwnServer(t *testing.T) {
	if os.Getenv(EnvServer) != "" {
		t.Skip("an external server is not this package's")
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
	if err := c.CreateRole(ctx, "pw_role", "the-secret-pw", ""); err != nil {
		t.Fatal(err)
	}
	if !c.CheckPassword(ctx, "pw_role", "the-secret-pw") || c.CheckPassword(ctx, "pw_role", "wrong") {
		t.Fatal("CheckPassword against the real server")
	}

	// A stand-in on the port that answers an SSL request "no" and asks for the
	// password in clear.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- ""
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		readMsg := func(typed bool) []byte {
			if typed {
				if _, err := r.ReadByte(); err != nil {
					return nil
				}
			}
			var n [4]byte
			if _, err := io.ReadFull(r, n[:]); err != nil {
				return nil
			}
			body := make([]byte, int(binary.BigEndian.Uint32(n[:]))-4)
			if _, err := io.ReadFull(r, body); err != nil {
				return nil
			}
			return body
		}
		msg := readMsg(false)
		if len(msg) >= 4 && binary.BigEndian.Uint32(msg) == 80877103 { // SSLRequest
			conn.Write([]byte("N"))
			msg = readMsg(false)
		}
		if msg == nil {
			got <- ""
			return
		}
		conn.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3}) // AuthenticationCleartextPassword
		got <- string(readMsg(true))
	}()
	realPort := c.Port
	c.Port = ln.Addr().(*net.TCPAddr).Port
	ok := c.CheckPassword(ctx, "pw_role", "the-secret-pw")
	c.Port = realPort
	if ok {
		t.Error("CheckPassword took a stand-in's word")
	}
	if pw := <-got; strings.Contains(pw, "the-secret-pw") {
		t.Error("CheckPassword sent the password to a stand-in on the server's port")
	}
}

// A pooler started again (a compute restart starts it again) writes its
// configuration anew in its directory, which belongs to the server's user when
// this process is root: a symbolic link that user left there in place of
// pgbouncer.ini or users.txt is replaced, never written through.
func TestBouncerRestart_WritesNothingThroughALink(t *testing.T) {
	if os.Getenv(EnvServer) != "" {
		t.Skip("an external server has no pooler here")
	}
	if _, err := FindBinDir(); err != nil {
		t.Skip("no PostgreSQL server binaries")
	}
	if _, err := FindPgBouncer(); err != nil {
		t.Skip("no pgbouncer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	b, err := StartBouncer(ctx, BouncerOptions{Databases: []BouncerDatabase{{Name: "postgres", Cluster: c, DBName: "postgres"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	victimDir := t.TempDir()
	for _, name := range []string{"pgbouncer.ini", "users.txt"} {
		victim := filepath.Join(victimDir, name+".victim")
		if err := os.WriteFile(victim, []byte("not the pooler's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(b.Dir(), name)
		os.Remove(link)
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
		err := b.Restart(ctx, func() error { return nil })
		if got, _ := os.ReadFile(victim); string(got) != "not the pooler's\n" {
			t.Errorf("%s: the link's target was written: %q", name, got)
		}
		if err != nil {
			t.Fatalf("the pooler started again: %v", err)
		}
		if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not a file of the pooler's own after its start (%v)", name, err)
		}
	}
}

// Nor through a hard link: a log that is another name of some other file (the
// server's user may make one of a file of its own, root may make one of anything)
// is not appended to.
func TestStartIn_WritesNoLogThroughAHardLink(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		t.Skip("no PostgreSQL server binaries")
	}
	base, err := os.MkdirTemp("", "lakebase-startin-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o711); err != nil { // PostgreSQL's user passes through when this is root
		t.Fatal(err)
	}
	root := filepath.Join(base, "pg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartIn(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("not the cluster's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(root, "postgres.log")
	os.Remove(log)
	if err := os.Link(victim, log); err != nil {
		t.Skipf("no hard link here: %v", err)
	}
	if c, err := StartIn(ctx, root); err == nil {
		c.Stop()
	}
	if b, _ := os.ReadFile(victim); string(b) != "not the cluster's\n" {
		t.Errorf("the log's other name was written: %q", b)
	}
}
