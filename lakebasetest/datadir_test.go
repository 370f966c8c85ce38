package lakebasetest_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/pgcluster"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/workspace"
)

// dataDirBase makes a directory for data directories that PostgreSQL's user can
// pass through (o+x) when the tests run as root, and removes it afterwards.
func dataDirBase(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "lakebase-datadir-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return base
}

// snapshot lists every file under dir with its mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		} else if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			v += " -> " + target
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s: %s changed", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}

// A service's connection string, written once against an emulator with a data
// directory, keeps working after the emulator stops and starts again: same ports
// (the pooled host's too), same CA, same client secret, same data, and the branch
// made through the API with its own data. The open *sql.DB of the service recovers
// too. A second emulator on the directory is refused while the first runs.
func TestDataDir_ConnectionStringAndDataSurviveARestart(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	_, noBouncer := pgcluster.FindPgBouncer()
	opts := lakebasetest.Options{DataDir: dir, Pooler: noBouncer == nil} // the pooled host too, where PgBouncer is installed
	s1, err := lakebasetest.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s1.Close() }()
	if got := s1.Reused(); len(got) != 0 {
		t.Fatalf("a new data directory reports reused %v", got)
	}
	dsn := s1.OAuthClientDSN()
	db, err := sql.Open("lakebase", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('written before the restart')"); err != nil {
		t.Fatal(err)
	}

	// A branch made through the API, with a row of its own.
	conn, err := lakebase.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	op, err := conn.Workspace().CreateBranch(ctx, workspace.CreateBranchRequest{Project: "projects/lakebase", BranchID: "feature-x"})
	if err == nil {
		_, err = op.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	branchDSN := dsn + ";Endpoint=;Project=lakebase;Branch=feature-x"
	if _, err := mustOpen(t, branchDSN).ExecContext(ctx, "INSERT INTO kept VALUES ('only on the branch')"); err != nil {
		t.Fatal(err)
	}

	_, err = lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if !errors.Is(err, lakebasetest.ErrDataDirInUse) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("a second emulator on the directory: %v, want ErrDataDirInUse naming process %d", err, os.Getpid())
	}

	caBefore, secretBefore, pooledBefore := string(s1.CACertPEM), s1.ServicePrincipal.ClientSecret, s1.PooledPort
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := lakebasetest.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.OAuthClientDSN() != dsn || string(s2.CACertPEM) != caBefore || s2.ServicePrincipal.ClientSecret != secretBefore || s2.PooledPort != pooledBefore {
		t.Fatalf("the restarted emulator differs:\n%s\n%s", s2.OAuthClientDSN(), dsn)
	}
	pools := map[string]*sql.DB{"the service's open pool": db, "a new pool": mustOpen(t, dsn)}
	if opts.Pooler {
		pools["a pool on the pooled host"] = mustOpen(t, dsn+";Pooled=true")
	}
	if len(s2.Reused()) == 0 {
		t.Fatal("Reused is empty after a restart on the data directory")
	}
	for name, d := range pools {
		var v string
		if err := d.QueryRowContext(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "written before the restart" {
			t.Fatalf("%s after the restart: %q, %v", name, v, err)
		}
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO kept VALUES ('after')"); err != nil {
		t.Fatal(err)
	}
	// The branch is there, with its data.
	if got := s2.Branches(); len(got) != 1 || got[0] != "projects/lakebase/branches/feature-x" {
		t.Fatalf("branches after the restart: %v", got)
	}
	var n int
	if err := mustOpen(t, branchDSN).QueryRowContext(ctx, "SELECT count(*) FROM kept WHERE v = 'only on the branch'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the branch's data after the restart: %d rows, %v", n, err)
	}
}

func mustOpen(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("lakebase", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A data directory of another version, a damaged one (its state unreadable, or a
// symbolic link where its state should be: a path an attacker could plant), and a
// directory that is not a data directory are refused, and left exactly as they
// were: nothing written through the link, nothing removed.
func TestDataDir_OtherVersionOrDamagedIsRefusedAndLeftAsItWas(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	dir := filepath.Join(base, "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("not the emulator's"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		tamper  func() error
		restore func() error
	}{
		{"another version",
			func() error {
				return os.WriteFile(filepath.Join(dir, "VERSION"), []byte("lakebase-local data directory 99\n"), 0o644)
			},
			func() error {
				return os.WriteFile(filepath.Join(dir, "VERSION"), []byte(lakebasetest.DataDirVersion+"\n"), 0o644)
			}},
		{"state that is not JSON",
			func() error { return os.WriteFile(state, []byte("{not json"), 0o600) },
			func() error { return os.WriteFile(state, good, 0o600) }},
		{"state open to others",
			func() error { return os.Chmod(state, 0o644) },
			func() error { return os.Chmod(state, 0o600) }},
		{"state a symbolic link",
			func() error { os.Remove(state); return os.Symlink(victim, state) },
			func() error { os.Remove(state); return os.WriteFile(state, good, 0o600) }},
		{"no PostgreSQL data",
			func() error { return os.Rename(filepath.Join(dir, "postgres"), filepath.Join(base, "pg-aside")) },
			func() error { return os.Rename(filepath.Join(base, "pg-aside"), filepath.Join(dir, "postgres")) }},
	}
	for _, c := range cases {
		if err := c.tamper(); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, base)
		_, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
		if !errors.Is(err, lakebasetest.ErrDataDir) || !strings.Contains(err.Error(), "left as it was") {
			t.Errorf("%s: %v, want ErrDataDir saying it was left as it was", c.name, err)
		}
		sameSnapshot(t, c.name, before, snapshot(t, base))
		if err := c.restore(); err != nil {
			t.Fatal(err)
		}
	}

	notOurs := filepath.Join(base, "not-ours")
	os.Mkdir(notOurs, 0o700)
	os.WriteFile(filepath.Join(notOurs, "notes.txt"), []byte("mine"), 0o600)
	before := snapshot(t, base)
	if _, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: notOurs}); !errors.Is(err, lakebasetest.ErrDataDir) {
		t.Errorf("a directory holding other files: %v, want ErrDataDir", err)
	}
	sameSnapshot(t, "a directory holding other files", before, snapshot(t, base))

	// Restored, it starts again.
	s, err = lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("the restored directory: %v", err)
	}
	s.Close()
}

// The branches listed in the data directory's state decide what is started and,
// past their expiry, removed: a forged entry whose name leaves branches/ (or is
// not this project's) is left out, and nothing outside branches/ is removed.
func TestDataDir_ForgedBranchEntriesRemoveNothingOutside(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	dir := filepath.Join(base, "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	victim := filepath.Join(base, "victim")
	if err := os.MkdirAll(filepath.Join(victim, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(victim, "data", "PG_VERSION"), []byte("15\n"), 0o600)
	state := filepath.Join(dir, "state.json")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	var forged []any
	for _, name := range []string{"projects/lakebase/branches/../../victim", "projects/other/branches/victim", "projects/lakebase/branches/victim/../../../victim"} {
		forged = append(forged, map[string]any{"name": name, "source": "projects/lakebase/branches/main", "database": "databricks_postgres",
			"endpoint": name + "/endpoints/primary", "created": past, "ready": past, "expires": past})
	}
	doc["branches"] = forged
	b, _ = json.Marshal(doc)
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(victim, "data", "PG_VERSION")); err != nil {
		t.Fatalf("a forged branch entry removed %s: %v", victim, err)
	}
	if got := s.Branches(); len(got) != 0 {
		t.Fatalf("forged branches were started: %v", got)
	}
}

// closeOrFail closes a server that should not have started.
func closeOrFail(t *testing.T, what string, s *lakebasetest.Server, err error) {
	t.Helper()
	if err == nil {
		s.Close()
		t.Errorf("%s: the emulator started", what)
	}
}

// A symbolic link where the data directory keeps PostgreSQL's data, its log or the
// branches is refused, never followed: the emulator would otherwise start
// PostgreSQL in, write its keys and log to, or remove an expired branch from
// wherever the link points. The directory and the link's target are left exactly
// as they were.
func TestDataDir_SymbolicLinksInsideAreRefusedNotFollowed(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	dir := filepath.Join(base, "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pg := filepath.Join(dir, "postgres")
	aside := filepath.Join(base, "elsewhere")
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("not the emulator's"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	// A state listing an expired branch, with branches/ a link to a directory
	// holding a directory of that branch's id.
	var doc map[string]any
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	name := "projects/lakebase/branches/feature-x"
	doc["branches"] = []any{map[string]any{"name": name, "source": "projects/lakebase/branches/main", "database": "databricks_postgres",
		"endpoint": name + "/endpoints/primary", "created": past, "ready": past, "expires": past}}
	withBranch, _ := json.Marshal(doc)

	cases := []struct {
		name            string
		tamper, restore func() error
	}{
		{"postgres/ a link to PostgreSQL's data elsewhere",
			func() error {
				if err := os.Rename(pg, aside); err != nil {
					return err
				}
				return os.Symlink(aside, pg)
			},
			func() error { os.Remove(pg); return os.Rename(aside, pg) }},
		{"postgres/data a link to the data elsewhere",
			func() error {
				if err := os.Rename(filepath.Join(pg, "data"), aside); err != nil {
					return err
				}
				return os.Symlink(aside, filepath.Join(pg, "data"))
			},
			func() error { os.Remove(filepath.Join(pg, "data")); return os.Rename(aside, filepath.Join(pg, "data")) }},
		{"postgres/postgres.log a link to another file",
			func() error {
				os.Remove(filepath.Join(pg, "postgres.log"))
				return os.Symlink(victim, filepath.Join(pg, "postgres.log"))
			},
			func() error { return os.Remove(filepath.Join(pg, "postgres.log")) }},
		{"branches/ a link, with an expired branch listed",
			func() error {
				if err := os.MkdirAll(filepath.Join(aside, "feature-x"), 0o700); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(aside, "feature-x", "precious"), []byte("keep me"), 0o600); err != nil {
					return err
				}
				if err := os.WriteFile(state, withBranch, 0o600); err != nil {
					return err
				}
				return os.Symlink(aside, filepath.Join(dir, "branches"))
			},
			func() error {
				os.Remove(filepath.Join(dir, "branches"))
				os.RemoveAll(aside)
				return os.WriteFile(state, good, 0o600)
			}},
	}
	for _, c := range cases {
		if err := c.tamper(); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, base)
		s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
		closeOrFail(t, c.name, s, err)
		if err != nil && (!errors.Is(err, lakebasetest.ErrDataDir) || !strings.Contains(err.Error(), "left as it was")) {
			t.Errorf("%s: %v, want ErrDataDir saying it was left as it was", c.name, err)
		}
		sameSnapshot(t, c.name, before, snapshot(t, base))
		if err := c.restore(); err != nil {
			t.Fatal(err)
		}
	}
	s, err = lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("the restored directory: %v", err)
	}
	s.Close()
}

// A data directory other users may write to is refused, new (empty) or used, and
// left as it was: another user could otherwise swap its files for links between
// the emulator's checks and its writes (the CA certificate, the state, the lock).
func TestDataDir_WritableByOthersIsRefused(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(empty, 0o777); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, base)
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: empty})
	closeOrFail(t, "an empty directory of mode 0777", s, err)
	if err != nil && !errors.Is(err, lakebasetest.ErrDataDir) {
		t.Errorf("an empty directory of mode 0777: %v, want ErrDataDir", err)
	}
	sameSnapshot(t, "an empty directory of mode 0777", before, snapshot(t, base))

	dir := filepath.Join(base, "data")
	if s, err = lakebasetest.NewServer(lakebasetest.Options{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o777, 0o770, 0o703} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, base)
		s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
		what := "a data directory of mode " + mode.String()
		closeOrFail(t, what, s, err)
		if err != nil && (!errors.Is(err, lakebasetest.ErrDataDir) || !strings.Contains(err.Error(), "left as it was")) {
			t.Errorf("%s: %v, want ErrDataDir saying it was left as it was", what, err)
		}
		sameSnapshot(t, what, before, snapshot(t, base))
	}
	if err := os.Chmod(dir, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if s, err = lakebasetest.NewServer(lakebasetest.Options{DataDir: dir}); err != nil {
		t.Fatalf("the directory with its mode back: %v", err)
	}
	s.Close()
}

// A refused data directory keeps its lock file as it was: the process id of the
// emulator that used it last (or no lock at all) is not replaced by that of one
// that refused it.
func TestDataDir_RefusedDirectoryKeepsItsLockFile(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	dir := filepath.Join(base, "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "lock")
	for _, c := range []struct {
		name   string
		tamper func() error
		opts   lakebasetest.Options
	}{
		{"a damaged state, the lock of another process", func() error {
			if err := os.WriteFile(lock, []byte("4242\n"), 0o600); err != nil {
				return err
			}
			return os.WriteFile(state, []byte("{not json"), 0o600)
		}, lakebasetest.Options{DataDir: dir}},
		{"a damaged state, no lock", func() error {
			if err := os.Remove(lock); err != nil {
				return err
			}
			return os.WriteFile(state, []byte("{not json"), 0o600)
		}, lakebasetest.Options{DataDir: dir}},
		{"another database, the lock of another process", func() error {
			if err := os.WriteFile(lock, []byte("4242\n"), 0o600); err != nil {
				return err
			}
			return os.WriteFile(state, good, 0o600)
		}, lakebasetest.Options{DataDir: dir, Database: "other_db"}},
	} {
		if err := c.tamper(); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, base)
		s, err := lakebasetest.NewServer(c.opts)
		closeOrFail(t, c.name, s, err)
		if err != nil && !errors.Is(err, lakebasetest.ErrDataDir) {
			t.Errorf("%s: %v, want ErrDataDir", c.name, err)
		}
		sameSnapshot(t, c.name, before, snapshot(t, base))
	}
}

// A new data directory whose first start fails (a fixed port another program
// holds) is left as it was found, absent or empty, not half made: a directory
// with PostgreSQL's data and no state would be refused as damaged at every start
// after. Started again with a free port, it works.
func TestDataDir_NewDirectoryWhoseStartFailedIsNotLeftHalfMade(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	absent := filepath.Join(base, "absent")
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, o := range []lakebasetest.Options{
		{DataDir: absent, HTTPPort: port},
		{DataDir: empty, PGPort: port},
	} {
		before := snapshot(t, base)
		s, err := lakebasetest.NewServer(o)
		closeOrFail(t, "a port that is taken", s, err)
		if err != nil && !strings.Contains(err.Error(), strconv.Itoa(port)) {
			t.Errorf("the error does not name the port %d: %v", port, err)
		}
		sameSnapshot(t, "a new data directory whose start failed", before, snapshot(t, base))
		o.HTTPPort, o.PGPort = 0, 0
		if s, err = lakebasetest.NewServer(o); err != nil {
			t.Fatalf("%s started again with free ports: %v", o.DataDir, err)
		}
		s.Close()
	}
}

// One emulator per directory holds even when its lock file was removed while it
// ran (as a stale pid file would be): a second one is refused before it touches
// anything, and the first keeps serving its roles, old and new.
func TestDataDir_SecondEmulatorRefusedEvenWithoutTheLockFile(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	dir := filepath.Join(base, "data")
	s1, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	if err := os.Remove(filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	s2, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	closeOrFail(t, "a second emulator after the lock file was removed", s2, err)
	if err != nil && !errors.Is(err, lakebasetest.ErrDataDirInUse) {
		t.Errorf("a second emulator after the lock file was removed: %v, want ErrDataDirInUse", err)
	}
	// The first one's roles still log in, a role made now too.
	if err := s1.AddPasswordRole("after_second", "pw-after"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := mustOpen(t, s1.OAuthClientDSN())
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("the first emulator's service principal after a second emulator tried the directory: %v", err)
	}
}

// A kept branch whose PostgreSQL does not start at one start (here its data
// claims another PostgreSQL version, as after an upgrade; a start that ran out of
// time is the same) stays listed in the data directory: the next start that can
// run it serves it again with its data, and meanwhile a new branch of the same id
// is refused rather than made over its data.
func TestDataDir_BranchThatDidNotStartIsKeptForTheNextStart(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s1, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s1.Close() }()
	dsn := s1.OAuthClientDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := lakebase.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	createBranch := func() error {
		op, err := conn.Workspace().CreateBranch(ctx, workspace.CreateBranchRequest{Project: "projects/lakebase", BranchID: "feature-y"})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		return err
	}
	if err := createBranch(); err != nil {
		t.Fatal(err)
	}
	branchDSN := dsn + ";Endpoint=;Project=lakebase;Branch=feature-y"
	if _, err := mustOpen(t, branchDSN).ExecContext(ctx, "CREATE TABLE only_here (v text); INSERT INTO only_here VALUES ('branch data')"); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	pgVersion := filepath.Join(dir, "branches", "feature-y", "data", "PG_VERSION")
	real, err := os.ReadFile(pgVersion)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pgVersion, []byte("9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Branches(); len(got) != 0 {
		t.Fatalf("a branch whose PostgreSQL cannot start is served: %v", got)
	}
	conn.Close()
	if conn, err = lakebase.NewConnector(s2.OAuthClientDSN()); err != nil {
		t.Fatal(err)
	}
	if err := createBranch(); err == nil {
		t.Error("a new branch of a kept branch's id was made over its data")
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(pgVersion, real, 0o600); err != nil {
		t.Fatal(err)
	}
	s3, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if got := s3.Branches(); len(got) != 1 || got[0] != "projects/lakebase/branches/feature-y" {
		t.Fatalf("branches once its PostgreSQL can start again: %v", got)
	}
	var v string
	if err := mustOpen(t, s3.OAuthClientDSN()+";Endpoint=;Project=lakebase;Branch=feature-y").QueryRowContext(ctx, "SELECT v FROM only_here").Scan(&v); err != nil || v != "branch data" {
		t.Fatalf("the branch's data: %q, %v", v, err)
	}
}

// A data directory whose PostgreSQL data is of another major version than the
// PostgreSQL found (as after an upgrade of the machine's PostgreSQL) is refused
// with ErrDataDir naming both versions, before anything in it is written: not
// its server key, its peer map or its log.
func TestDataDir_DataOfAnotherPostgreSQLVersionIsRefusedAndLeftAsItWas(t *testing.T) {
	testenv.NeedPostgres(t)
	base := dataDirBase(t)
	dir := filepath.Join(base, "data")
	s, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pgVersion := filepath.Join(dir, "postgres", "data", "PG_VERSION")
	if err := os.WriteFile(pgVersion, []byte("9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, base)
	s, err = lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	closeOrFail(t, "data of PostgreSQL 9", s, err)
	if err != nil && (!errors.Is(err, lakebasetest.ErrDataDir) || !strings.Contains(err.Error(), "PostgreSQL 9")) {
		t.Errorf("data of PostgreSQL 9: %v, want ErrDataDir naming the version", err)
	}
	sameSnapshot(t, "data of PostgreSQL 9", before, snapshot(t, base))
}

// Revocations are kept in the data directory with the signing key that makes the
// tokens they revoke: a workspace token revoked with Revoke and the database
// credentials of RevokeAllCredentials stay refused after the emulator restarts,
// instead of coming back to life; a new token and credential work.
func TestDataDir_RevocationsSurviveARestart(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s1, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s1.Close() }()
	token := func(s *lakebasetest.Server) string {
		t.Helper()
		req, _ := http.NewRequest("POST", s.URL+"/oidc/v1/token", strings.NewReader("grant_type=client_credentials&scope=all-apis"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(s.ServicePrincipal.ClientID, s.ServicePrincipal.ClientSecret)
		var out struct {
			AccessToken string `json:"access_token"`
		}
		if code := doJSON(t, req, &out); code != 200 || out.AccessToken == "" {
			t.Fatalf("client_credentials: %d", code)
		}
		return out.AccessToken
	}
	credential := func(s *lakebasetest.Server, tok string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", s.URL+"/api/2.0/postgres/credentials", strings.NewReader(`{"endpoint":"`+s.Endpoint+`"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		var out struct {
			Token string `json:"token"`
		}
		if code := doJSON(t, req, &out); code != 200 || out.Token == "" {
			t.Fatalf("credential: %d", code)
		}
		return out.Token
	}
	me := func(s *lakebasetest.Server, tok string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/api/2.0/preview/scim/v2/Me", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return doJSON(t, req, nil)
	}
	login := func(s *lakebasetest.Server, cred string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pc, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s sslmode=verify-full sslrootcert=%s",
			s.Host, s.Port, s.Database, s.ServicePrincipal.ClientID, cred, s.CAFile))
		if err == nil {
			pc.Close(ctx)
		}
		return err
	}
	kept, revoked := token(s1), token(s1)
	cred := credential(s1, kept)
	if err := login(s1, cred); err != nil {
		t.Fatal(err)
	}
	s1.Revoke(revoked)
	s1.RevokeAllCredentials()
	if me(s1, revoked) == 200 || login(s1, cred) == nil {
		t.Fatal("the revocations do not hold before the restart")
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if code := me(s2, revoked); code == 200 {
		t.Error("a revoked workspace token works again after the restart")
	}
	if err := login(s2, cred); err == nil {
		t.Error("a database credential of RevokeAllCredentials logs in again after the restart")
	}
	if code := me(s2, kept); code != 200 {
		t.Errorf("a token that was not revoked after the restart: %d", code)
	}
	if err := login(s2, credential(s2, kept)); err != nil {
		t.Errorf("a new credential after the restart: %v", err)
	}
}

func doJSON(t *testing.T, req *http.Request, out any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// A person's login (OAuthPKCE) keeps working across a restart of the emulator on
// its data directory: the workspace remembers the refresh tokens it issued, as the
// service does, so a service holding a refresh token refreshes without a browser
// after the restart (RefreshOAuthAccessToken here; a connector's stored login
// likewise). A refresh token used once (rotated) stays used.
func TestDataDir_APersonsLoginSurvivesARestart(t *testing.T) {
	testenv.NeedPostgres(t)
	dir := filepath.Join(dataDirBase(t), "data")
	s1, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s1.Close() }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	callback := "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	var stores atomic.Int64 // a memory store of its own for each connector
	follow := lakebase.WithBrowserOpener(func(u string) error {
		go func() {
			if resp, err := http.Get(u); err == nil { // the browser: the consent is approved at once
				resp.Body.Close()
			}
		}()
		return nil
	})
	tokens := func(s *lakebasetest.Server, query string, opts ...lakebase.Option) (access, refresh string, err error) {
		c, err := lakebase.NewConnector(s.OAuthPKCEDSN("InitiateOAuth=OFF", "CallbackURL="+callback, "OAuthSettingsLocation=memory://"+t.Name()+strconv.FormatInt(stores.Add(1), 10), "Timeout=60"),
			append(opts, lakebase.WithStderr(io.Discard))...)
		if err != nil {
			return "", "", err
		}
		db := sql.OpenDB(c)
		defer db.Close()
		var exp any
		err = db.QueryRow(query).Scan(&access, &refresh, &exp)
		return access, refresh, err
	}
	_, rt1, err := tokens(s1, "EXEC GetOAuthAccessToken AuthMode='APP'", follow)
	if err != nil || rt1 == "" {
		t.Fatalf("the person's login: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := lakebasetest.NewServer(lakebasetest.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	access, rt2, err := tokens(s2, "EXEC RefreshOAuthAccessToken OAuthRefreshToken='"+rt1+"'")
	if err != nil || access == "" || rt2 == "" || rt2 == rt1 {
		t.Fatalf("a refresh after the restart: new refresh token %t, %v", rt2 != "" && rt2 != rt1, err)
	}
	if _, _, err := tokens(s2, "EXEC RefreshOAuthAccessToken OAuthRefreshToken='"+rt2+"'"); err != nil {
		t.Fatalf("a second refresh after the restart: %v", err)
	}
	if _, _, err := tokens(s2, "EXEC RefreshOAuthAccessToken OAuthRefreshToken='"+rt1+"'"); err == nil {
		t.Fatal("a refresh token used before the restart worked again after it")
	}
}
