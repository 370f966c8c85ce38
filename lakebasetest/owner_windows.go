//go:build windows

package lakebasetest

import "os"

// ownedByMe cannot tell on Windows; the directory's ACL is the user's to keep.
func ownedByMe(os.FileInfo) bool { return true }

func ownedPrivately(os.FileInfo) bool { return true }

// writableByOthers cannot tell on Windows either (a directory reads as 0777).
func writableByOthers(os.FileInfo) bool { return false }

// lockDir: on Windows the lock file alone keeps a second emulator out.
func lockDir(string) (func(), bool, error) { return nil, true, nil }
