//go:build unix

package emulator

import (
	"os/exec"
	"syscall"
)

// SetProcessGroup gives cmd's process its own process group, so that
// KillProcessGroup also stops whatever it forks (node, its workers).
func SetProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	setParentDeathSignal(cmd.SysProcAttr)
}

// KillProcessGroup signals the whole process group of a command started
// after SetProcessGroup: SIGKILL when hard, else SIGTERM. Call it only while
// the process has not been reaped (see KillGroupUnlessReaped): once it is, its
// pid can be given to a new process, and with pid_max at 32768 a test run
// wraps around; the signal would then hit that process's group (another
// test's emulator).
func KillProcessGroup(cmd *exec.Cmd, hard bool) {
	if cmd.Process == nil {
		return
	}
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

// ProcessGroupAlive reports whether any process of the group led by pid is alive.
func ProcessGroupAlive(pid int) bool {
	return syscall.Kill(-pid, 0) == nil
}
