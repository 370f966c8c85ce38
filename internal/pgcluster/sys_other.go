//go:build !linux && !windows

package pgcluster

import "syscall"

func sysProcAttr(cred *credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
