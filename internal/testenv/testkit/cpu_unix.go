//go:build unix

package testkit

import (
	"syscall"
	"time"
)

// ProcessCPU is this process's CPU time so far (user+sys): steadier than wall
// time on a shared machine, for benchmarks and the bench commands.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
