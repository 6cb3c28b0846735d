//go:build !unix

package testkit

import "time"

// ProcessCPU is 0 where getrusage is missing: CPU figures are not measured there.
func ProcessCPU() time.Duration { return 0 }
