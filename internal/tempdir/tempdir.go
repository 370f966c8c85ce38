// Package tempdir makes the temporary directories of the emulator and its
// PostgreSQL, each marked with the process that owns it, and sweeps the ones whose
// process has died (killed with SIGKILL, say) so they do not pile up holding keys.
package tempdir

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ownerFile names the process that owns a directory.
const ownerFile = ".lakebase-owner"

// Make creates a private temporary directory whose name starts with prefix and
// marks it as this process's. Sweep removes it once this process is gone.
func Make(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := Mark(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// Mark (re)writes dir's owner mark as this process (after a chown of the tree, the
// mark must still be the sweeping user's).
func Mark(dir string) error {
	mark := filepath.Join(dir, ownerFile)
	os.Remove(mark) // a new file is this user's, whoever owned the old one
	// Made new, never through a link the directory's owner (PostgreSQL's user,
	// when this process is root) could put there meanwhile.
	f, err := os.OpenFile(mark, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(os.Getpid()))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sweep removes the directories in the temporary directory whose names start with
// prefix, marked by this user, whose owning process no longer runs.
func Sweep(prefix string) {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, dir := range matches {
		if !strings.HasPrefix(filepath.Base(dir), prefix) {
			continue
		}
		mark := filepath.Join(dir, ownerFile)
		fi, err := os.Lstat(mark)
		if err != nil || !fi.Mode().IsRegular() || !ownedByMe(fi) {
			continue
		}
		data, err := os.ReadFile(mark)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
			continue
		}
		os.RemoveAll(dir)
	}
}
