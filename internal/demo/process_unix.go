//go:build unix

package demo

import (
	"os/exec"
	"syscall"
)

// setProcessGroup gives the child its own process group (see proc).
func setProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	setParentDeathSignal(cmd.SysProcAttr)
}

// killGroup signals the child's whole process group: SIGKILL when hard,
// else SIGTERM (the connector drains and releases its leases on SIGTERM).
func killGroup(cmd *exec.Cmd, hard bool) {
	if cmd.Process == nil {
		return
	}
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

// groupAlive reports whether any process of the group led by pid is alive.
func groupAlive(pid int) bool {
	return syscall.Kill(-pid, 0) == nil
}
