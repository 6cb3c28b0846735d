package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/emulator"
)

// startTimeout bounds how long an emulator may take to answer; kinesis-mock
// (Scala.js) needs a couple of seconds on a loaded 2-core machine.
const startTimeout = 45 * time.Second

// StartDynalite starts a fresh in-memory dynalite on a free 127.0.0.1 port and
// returns its endpoint URL. The process is killed when the test ends.
func StartDynalite(t testing.TB) string {
	t.Helper()
	return startNamed(t, emulator.Dynalite)
}

// StartKinesalite starts a fresh in-memory kinesalite on a free 127.0.0.1 port
// and returns its endpoint URL. Stream state changes take 10 ms.
func StartKinesalite(t testing.TB) string {
	t.Helper()
	return startNamed(t, emulator.Kinesalite)
}

// StartKinesisMock starts kinesis-mock (npm kinesis-local) with its plain HTTP
// port on a free 127.0.0.1 port and returns the http:// endpoint URL. State
// transitions (create, split, merge...) take 10 ms.
func StartKinesisMock(t testing.TB) string {
	t.Helper()
	return startNamed(t, emulator.KinesisMock)
}

func startNamed(t testing.TB, name string) string {
	t.Helper()
	root := RepoRoot(t)
	entry, err := emulator.EntryPoint(root, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ensureInstalled(t, entry)
	// Free ports are picked, then bound by the emulator: retry when another
	// process grabbed one in between.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := emulator.FreePorts(2)
		if err != nil {
			t.Fatalf("testenv: pick ports for %s: %v", name, err)
		}
		cmd, err := emulator.Command(root, name, ports[0], ports[1])
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		endpoint, err := launch(t, name, cmd, ports[0])
		if err == nil {
			return endpoint
		}
		lastErr = err
		if !errors.Is(err, emulator.ErrExited) && !errors.Is(err, emulator.ErrPortTaken) {
			break
		}
	}
	t.Fatalf("testenv: start %s: %v", name, lastErr)
	return ""
}

func launch(t testing.TB, name string, cmd *exec.Cmd, port int) (string, error) {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		return "", fmt.Errorf("create log file: %w", err)
	}
	// A file, not a buffer: no copier goroutines for goleak to find.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	emulator.SetProcessGroup(cmd)
	// Pdeathsig fires when the OS thread that started the child exits, not
	// the process: the Go runtime may retire threads, which killed emulators
	// mid-test. Start and wait on one goroutine locked to its thread, so the
	// thread outlives the child.
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return "", fmt.Errorf("run %s (is node installed?): %w", cmd.Path, err)
	}
	stop := func() {
		emulator.KillGroupUnlessReaped(cmd, true, exited)
		_ = cmd.Process.Kill() // os.Process tracks its own process (pidfd): no reuse risk
		<-exited
		logFile.Close()
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := emulator.WaitHTTP(context.Background(), endpoint, cmd.Process.Pid, exited, startTimeout); err != nil {
		stop()
		out, _ := os.ReadFile(logFile.Name())
		return "", fmt.Errorf("%w\n--- %s output ---\n%s", err, name, tail(out, 4000))
	}
	t.Cleanup(stop)
	return endpoint, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
