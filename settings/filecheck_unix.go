//go:build !windows

package settings

import (
	"fmt"
	"os"
	"syscall"
)

// checkPrivate refuses a token file (or its lock file) that others could read,
// change or swap: a symbolic link, a file owned by another user, or one that its
// group or others may read or write. fi is from Lstat.
func checkPrivate(path string, fi os.FileInfo) error {
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("is a symbolic link; it holds tokens, so it must be a regular file: replace the link with the file it points to")
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("is not a regular file")
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("is owned by user id %d, not by this user (%d); it holds tokens: remove it, or chown it to yourself", st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("can be read or written by its group or others (mode %#o); it holds tokens: run chmod 600 on it", perm)
	}
	return nil
}
