//go:build windows

package pgcluster

import (
	"os"
	"syscall"
)

// credential is unused on Windows: PostgreSQL refuses to run as an administrator
// there too, but the tests run it as the current user.
type credential struct{}

// noFollow: the server's directory is this user's own on Windows.
const noFollow = 0

func hardLinked(os.FileInfo) bool { return false }

func runAs() (*credential, error)                  { return nil, nil }
func chownTree(string, *credential) error          { return nil }
func runAsAttr(*credential) *syscall.SysProcAttr   { return nil }
func sysProcAttr(*credential) *syscall.SysProcAttr { return nil }

// interrupt stops the server; Windows has no SIGINT for another process.
func interrupt(p *os.Process) error { return p.Kill() }

func terminate(p *os.Process) error { return p.Kill() }

// localAuth is how the server takes logins over its Unix socket: Windows has no
// peer authentication, and the socket directory is the user's own.
const localAuth = "trust"

// osUserName is unused where there are no peer logins.
func osUserName() (string, error) { return "", nil }

func credUserName(*credential) string { return "" }

// allowSearch is not needed where the server runs as this user.
func allowSearch(string) error { return nil }
