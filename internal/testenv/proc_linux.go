//go:build linux

package testenv

import "syscall"

// setParentDeathSignal kills the emulator if the test binary dies without
// running its cleanups (panic, timeout, SIGKILL).
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
