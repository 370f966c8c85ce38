//go:build !windows

package lakebasetest

import (
	"errors"
	"os"
	"syscall"
)

// ownedByMe reports whether fi is this user's.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// writableByOthers reports whether group or others may write to fi.
func writableByOthers(fi os.FileInfo) bool { return fi.Mode().Perm()&0o022 != 0 }

// ownedPrivately reports whether fi is this user's and closed to group and others.
func ownedPrivately(fi os.FileInfo) bool { return ownedByMe(fi) && fi.Mode().Perm()&0o077 == 0 }

// lockDir holds an exclusive lock (flock) on the directory path itself, or says
// that another holds it (ok false). The descriptor is closed on exec: PostgreSQL
// and PgBouncer do not inherit the lock. Where a directory cannot be locked (NFS
// emulates flock with fcntl locks, which want a descriptor open for writing), the
// lock file alone keeps a second emulator out, as before.
func lockDir(path string) (release func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, true, nil // not lockable here
	}
	return func() { f.Close() }, true, nil
}
