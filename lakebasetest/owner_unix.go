//go:build !windows

package lakebasetest

import (
	"os"
	"syscall"
)

// ownedByMe reports whether fi is this user's.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// ownedPrivately reports whether fi is this user's and closed to group and others.
func ownedPrivately(fi os.FileInfo) bool { return ownedByMe(fi) && fi.Mode().Perm()&0o077 == 0 }
