//go:build !windows

package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// noFollow makes an open fail on a symbolic link: the files the emulator writes
// in the server's directory, which the server's user owns when this process is root.
const noFollow = syscall.O_NOFOLLOW

// hardLinked reports whether the file fi describes has other names.
func hardLinked(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 1
}

// credential is the user PostgreSQL runs as.
type credential = syscall.Credential

// runAs returns the credential to run PostgreSQL with: nil unless this process is
// root, when it is the "postgres" user (or "nobody" when there is none).
func runAs() (*credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgcluster: running as root, and no unprivileged user (postgres or nobody) exists to run PostgreSQL as")
}

func chownTree(root string, cred *credential) error {
	if cred == nil {
		return nil
	}
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}

// runAsAttr runs a command (initdb) as cred.
func runAsAttr(cred *credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

// terminate asks a pooler for an immediate shutdown.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// interrupt asks the server for a fast shutdown.
func interrupt(p *os.Process) error { return p.Signal(syscall.SIGINT) }

// localAuth is how the server takes logins over its Unix socket.
const localAuth = "peer map=lakebase"

// osUserName is the name peer authentication sees for this process.
func osUserName() (string, error) {
	u, err := user.LookupId(strconv.Itoa(os.Geteuid()))
	if err != nil {
		return "", fmt.Errorf("pgcluster: the name of this OS user (for peer logins): %w", err)
	}
	return u.Username, nil
}

// credUserName is the name of the user cred runs as ("" for nil).
func credUserName(cred *credential) string {
	if cred == nil {
		return ""
	}
	u, err := user.LookupId(strconv.Itoa(int(cred.Uid)))
	if err != nil {
		return ""
	}
	return u.Username
}

// allowSearch lets the server's user through dir (o+x, not read: it lists
// nothing), and checks that it can reach dir at all: every directory above it must
// let others through too, or the error names the one that does not.
func allowSearch(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
		return err
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("pgcluster: PostgreSQL runs as an unprivileged user, which cannot pass through %s (mode %v) to reach %s: give it search permission (chmod o+x %s) or use a directory elsewhere", d, fi.Mode().Perm(), dir, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
