//go:build unix && !linux

package emulator

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr) {}
