//go:build unix

package lakebase_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the process has used so far, user plus system
// (getrusage RUSAGE_SELF), and true.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
