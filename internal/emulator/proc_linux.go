//go:build linux

package emulator

import "syscall"

// setParentDeathSignal kills the child if this process dies without running
// its cleanups (panic, timeout, SIGKILL), so no emulator is left behind.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
