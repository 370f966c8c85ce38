//go:build windows

package settings

import (
	"fmt"
	"os"
)

// checkPrivate refuses a token file that is a link or not a regular file. Windows
// reports mode 0666 for any writable file, so modes say nothing there: the file's
// privacy comes from the user profile directory it lives in (the default location,
// under %AppData%), whose ACL admits only its user.
func checkPrivate(path string, fi os.FileInfo) error {
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("is a symbolic link; it holds tokens, so it must be a regular file")
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("is not a regular file")
	}
	return nil
}
