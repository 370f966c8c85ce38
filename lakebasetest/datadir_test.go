package lakebasetest_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
