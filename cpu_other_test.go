//go:build !unix

package lakebase_test

import "time"

// processCPU cannot read the process's CPU time here: BenchmarkClientCPU then
// reports wall time, bytes and allocations only.
func processCPU() (time.Duration, bool) { return 0, false }
