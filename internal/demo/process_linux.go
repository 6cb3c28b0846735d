//go:build linux

package demo

import "syscall"

// setParentDeathSignal kills the child if the demo dies without cleaning up
// (SIGKILL, crash), so no emulator or worker is left behind.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
