package pgcluster

import "syscall"

// sysProcAttr runs the server as cred, in its own process group, and has the kernel
// stop it (SIGQUIT, an immediate shutdown) if this process dies without Stop.
func sysProcAttr(cred *credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
}
