package demo

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/wallarm/apigw-connector/internal/emulator"
)

// proc is a child process the demo started. Each runs in its own process
// group, so stopping it also stops whatever it forked, and a terminal's
// Ctrl-C reaches only the demo, which then stops its children in order.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process was waited for
	err     error         // its exit status, valid after done
}

// startProc starts cmd with its output appended to logPath (unless the
// caller set Stdout/Stderr) and reaps it in the background.
func startProc(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	var logFile *os.File
	if cmd.Stdout == nil || cmd.Stderr == nil {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log of %s: %w", name, err)
		}
		logFile = f
		if cmd.Stdout == nil {
			cmd.Stdout = f
		}
		if cmd.Stderr == nil {
			cmd.Stderr = f
		}
	}
	emulator.SetProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended (and was reaped).
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process group to terminate (SIGTERM), waits up to grace (or
// until now closes), then kills the group, and waits for the process. It
// returns only once the process has been reaped.
func (p *proc) stop(grace time.Duration, now <-chan struct{}) {
	if p.exited() {
		return // reaped: its pid, and so its group id, may be someone else's now
	}
	if grace > 0 {
		emulator.KillGroupUnlessReaped(p.cmd, false, p.done)
		t := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-t.C:
		case <-now:
		}
		t.Stop()
	}
	emulator.KillGroupUnlessReaped(p.cmd, true, p.done)
	_ = p.cmd.Process.Kill() // the process itself, safely (pidfd), if the group signal was skipped
	<-p.done
}

// exitCode is the process's exit code, or -1.
func (p *proc) exitCode() int {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err == nil {
		return 0
	}
	return -1
}

// logTail returns the last n bytes of the process's log, for error messages.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
