//go:build !linux

package delay

// New returns Go's timers: no finer timer is used on this system.
func New() Delayer { return Timers{} }
