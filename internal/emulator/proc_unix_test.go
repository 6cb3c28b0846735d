//go:build unix

package emulator

import (
	"os/exec"
	"testing"
	"time"
)

// The group of a reaped leader is never signalled: by then its pid may lead
// another test's emulator. Here the "reaped" channel is closed while the
// process still runs, standing for that stranger, and it must survive; with
// the channel open the group is killed.
func TestKillGroupUnlessReapedSparesAReapedLeadersPid(t *testing.T) {
	t.Parallel()
	start := func() (*exec.Cmd, chan struct{}) {
		cmd := exec.Command("sleep", "30")
		SetProcessGroup(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
		return cmd, done
	}

	stranger, strangerDone := start()
	closed := make(chan struct{})
	close(closed)
	KillGroupUnlessReaped(stranger, true, closed)
	select {
	case <-strangerDone:
		t.Fatal("a group whose leader counted as reaped was signalled")
	case <-time.After(200 * time.Millisecond):
	}

	live, liveDone := start()
	KillGroupUnlessReaped(live, true, liveDone)
	select {
	case <-liveDone:
	case <-time.After(10 * time.Second):
		t.Fatal("a live leader's group was not killed")
	}
}
