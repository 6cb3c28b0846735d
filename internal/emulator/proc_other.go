//go:build !unix

package emulator

import "os/exec"

// SetProcessGroup does nothing where there are no Unix process groups.
func SetProcessGroup(*exec.Cmd) {}

// KillProcessGroup kills the process itself where there are no Unix process groups.
func KillProcessGroup(cmd *exec.Cmd, _ bool) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

// ProcessGroupAlive has no process groups to look at here.
func ProcessGroupAlive(int) bool { return false }
