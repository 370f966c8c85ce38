package settings

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A settings document that parses but holds nulls or holes is an error naming the
// file, never a panic, and the file is left as it was.
func TestFileStore_WholeDocumentValidated(t *testing.T) {
	for name, doc := range map[string]string{
		"null pending":        `{"version":1,"tokens":{},"pending":{"s":null}}`,
		"null token":          `{"version":1,"tokens":{"w|c|s":null}}`,
		"token key":           `{"version":1,"tokens":{"nonsense":{"access_token":"a"}}}`,
		"empty token":         `{"version":1,"tokens":{"w|c|s":{}}}`,
		"pending no verifier": `{"version":1,"tokens":{},"pending":{"s":{"created":"2026-01-01T00:00:00Z"}}}`,
	} {
		path := filepath.Join(t.TempDir(), "settings.json")
		os.WriteFile(path, []byte(doc), 0o600)
		st, _ := OpenStore(path)
		err := st.Update(context.Background(), func(*Settings) (bool, error) { return true, nil })
		var se *SettingsFileError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("%s: %v", name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != doc {
			t.Fatalf("%s: the file was changed", name)
		}
	}
}

// Pending logins are capped: the oldest go first, and the file stays small however
// many logins are started.
func TestFileStore_PendingLoginsCapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	st, _ := OpenStore(path)
	base := time.Now()
	for i := range 500 {
		st.Update(context.Background(), func(s *Settings) (bool, error) {
			if s.Pending == nil {
				s.Pending = map[string]*Pending{}
			}
			s.Pending[fmt.Sprint("state-", i)] = &Pending{Verifier: fmt.Sprint("verifier-", i), Key: "w|c|s", Created: base.Add(time.Duration(i) * time.Millisecond)}
			return true, nil
		})
	}
	var n int
	var newest, oldest bool
	st.Update(context.Background(), func(s *Settings) (bool, error) {
		n = len(s.Pending)
		_, newest = s.Pending["state-499"]
		_, oldest = s.Pending["state-0"]
		return false, nil
	})
	if n != MaxPending || !newest || oldest {
		t.Fatalf("%d pending (newest kept %v, oldest kept %v)", n, newest, oldest)
	}
	if fi, _ := os.Stat(path); fi.Size() > 32<<10 {
		t.Fatalf("the file grew to %d bytes", fi.Size())
	}
}

// The store refuses a file or lock file that is a symbolic link, belongs to another
// user, or is open to its group or others; the error says how to fix it.
func TestFileStore_RefusesUnsafeFiles(t *testing.T) {
	good := `{"version":1,"tokens":{"w|c|s":{"access_token":"a"}}}`
	check := func(name, path, want string) {
		t.Helper()
		st, _ := OpenStore(path)
		err := st.Update(context.Background(), func(*Settings) (bool, error) { return true, nil })
		if !errors.Is(err, ErrSettingsFile) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "real.json")
	os.WriteFile(real, []byte(good), 0o600)
	link := filepath.Join(dir, "link.json")
	os.Symlink(real, link)
	check("symlink", link, "symbolic link")

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		p := filepath.Join(t.TempDir(), "s.json")
		os.WriteFile(p, []byte(good), 0o600)
		os.Chmod(p, mode)
		check(fmt.Sprintf("mode %#o", mode), p, "chmod 600")
	}

	lockLinked := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(lockLinked, []byte(good), 0o600)
	os.Symlink(filepath.Join(dir, "elsewhere"), lockLinked+".lock")
	check("symlinked lock file", lockLinked, "lock file")

	if os.Geteuid() == 0 {
		p := filepath.Join(t.TempDir(), "s.json")
		os.WriteFile(p, []byte(good), 0o600)
		os.Chown(p, 65534, 65534) // nobody
		check("foreign owner", p, "owned by user id 65534")
	}
	// The safe file is read.
	st, _ := OpenStore(real)
	if err := st.Update(context.Background(), func(*Settings) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
}

// A writer killed mid-write leaves its temporary file (a whole document, tokens
// included) beside the settings file; the next update sweeps it under the lock.
func TestFileStore_SweepsTheTemporaryFilesOfDeadWriters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "settings.json")
	stale := filepath.Join(dir, ".settings.json.tmp-123456")
	if err := os.WriteFile(stale, []byte(`{"version":1,"tokens":{"w|c|s":{"access_token":"secret"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, ".other.json.tmp-1")
	os.WriteFile(other, []byte("x"), 0o600)
	st := &FileStore{Path: path}
	if err := st.Update(context.Background(), func(*Settings) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale temporary file is still there (%v)", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal("another file's temporary file was removed")
	}
}
func TestFileStore_ModesAtomicWriteAndCorruption(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	path := filepath.Join(dir, "settings.json")
	st, _ := OpenStore(path)
	err := st.Update(context.Background(), func(s *Settings) (bool, error) {
		s.Tokens["w|c|s"] = &StoredToken{AccessToken: "a", RefreshToken: "r"}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("modes file %v dir %v", fi.Mode().Perm(), di.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
	var got string
	st.Update(context.Background(), func(s *Settings) (bool, error) { got = s.Tokens["w|c|s"].RefreshToken; return false, nil })
	if got != "r" {
		t.Fatalf("read back %q", got)
	}

	for name, content := range map[string]string{
		"not JSON":      "{{{",
		"wrong version": `{"version": 7, "tokens": {}}`,
		"wrong types":   `{"version": 1, "tokens": []}`,
	} {
		os.WriteFile(path, []byte(content), 0o600)
		err := st.Update(context.Background(), func(s *Settings) (bool, error) { return true, nil })
		var se *SettingsFileError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: err = %v", name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Fatalf("%s: the file was changed", name)
		}
		if strings.Contains(err.Error(), content) && len(content) > 3 {
			t.Fatalf("%s: the error shows the file content", name)
		}
	}
}

func TestMemoryStore_SharedByID(t *testing.T) {
	a, b := MemoryStore("shared-test"), MemoryStore("shared-test")
	a.Update(context.Background(), func(s *Settings) (bool, error) {
		s.Tokens["w|c|s"] = &StoredToken{AccessToken: "x"}
		return true, nil
	})
	var got string
	b.Update(context.Background(), func(s *Settings) (bool, error) { got = s.Tokens["w|c|s"].AccessToken; return false, nil })
	if got != "x" || NewPrivateMemoryStore() == NewPrivateMemoryStore() {
		t.Fatalf("got %q", got)
	}
}

func TestToken_StringRedacts(t *testing.T) {
	tok := &StoredToken{AccessToken: "SECRET-A", RefreshToken: "SECRET-R", Expiry: time.Now()}
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok)} {
		if strings.Contains(s, "SECRET") {
			t.Fatalf("leak: %s", s)
		}
	}
}
