// Package procs sizes GOMAXPROCS to the container's CPU limit.
package procs

import (
	"fmt"
	"log/slog"
	"runtime"

	"go.uber.org/automaxprocs/maxprocs"
)

// FitCPULimit sets GOMAXPROCS to the CPU limit of the process's cgroup rounded
// down, and at least 1, unless GOMAXPROCS is set in the environment (which then
// rules). Go rounds a limit up and uses at least 2, so a task of 1 vCPU or less
// (the usual Fargate size for a few shards) ran two Ps on one vCPU: the second
// P only adds hand-offs between threads, and bursts that the CPU quota then
// throttles. With one P replay spent 17-19% less CPU per call (alternating
// runs against the least node, GOMAXPROCS=1 against 2).
// A host or task without a limit keeps Go's choice.
func FitCPULimit(log *slog.Logger) {
	before := runtime.GOMAXPROCS(0)
	var said string
	_, err := maxprocs.Set(maxprocs.Min(1), maxprocs.Logger(func(format string, args ...any) {
		said = fmt.Sprintf(format, args...)
	}))
	switch after := runtime.GOMAXPROCS(0); {
	case err != nil:
		log.Warn("GOMAXPROCS left as Go chose it: the cgroup CPU limit could not be read", "gomaxprocs", before, "error", err)
	case after != before:
		log.Info("GOMAXPROCS set to the CPU limit rounded down", "gomaxprocs", after, "go_default", before, "detail", said)
	}
}
