package lakebase_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// readOnlyDir returns a directory that becomes read-only when makeReadOnly is
// called: a tmpfs remounted read-only (as root, for whom permissions are no
// barrier), or a directory without write permission.
func readOnlyDir(t *testing.T) (dir string, makeReadOnly func()) {
	t.Helper()
	dir = t.TempDir()
	if os.Geteuid() != 0 {
		return dir, func() { os.Chmod(dir, 0o500); t.Cleanup(func() { os.Chmod(dir, 0o700) }) }
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a read-only place needs a tmpfs here (mount: %v %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir, func() {
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount read-only: %v %s", err, out)
		}
	}
}

// A settings file on a read-only mount (a mounted secret, as in "transfer a
// settings file") is used read-only: the stored login works with no lock and no
// write.
func TestSettingsFile_ReadOnlyMountIsUsedReadOnly(t *testing.T) {
	needServers(t)
	dir, makeReadOnly := readOnlyDir(t)
	file := filepath.Join(dir, "OAuthSettings.txt")
	dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file)
	seeded, _ := newDB(t, dsn+";OAuthRefreshToken="+userRefreshToken(t))
	if u := currentUser(t, seeded); u != emu.User.Email {
		t.Fatalf("current_user %q", u)
	}
	seeded.Close()
	makeReadOnly()
	db, _ := newDB(t, dsn)
	if u := currentUser(t, db); u != emu.User.Email {
		t.Fatalf("on the read-only mount: current_user %q", u)
	}
}
