package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wallarm/apigw-connector/internal/demo"
	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

// The demo tests run the real thing: emulators, the built connector (two
// workers), devnode and generate. Together they take about a minute.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apigw-demo-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// Run must leave no goroutine behind (devnode, pipes, HTTP clients).
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// buildBinaries builds the connector (shared by the tests, so the demo does
// not build it twice) and the demo command itself.
func buildBinaries(t *testing.T) (connector, demoBin string) {
	t.Helper()
	connector, demoBin = filepath.Join(binDir, "apigw-connector"), filepath.Join(binDir, "apigw-demo")
	buildOnce.Do(func() {
		root := testenv.RepoRoot(t)
		for pkg, out := range map[string]string{"./cmd/apigw-connector": connector, "./cmd/apigw-demo": demoBin} {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return connector, demoBin
}

// TestDemo runs the demo with 20 s of traffic and checks its verdict: every
// generated call reached the node, the inventory holds every generated
// endpoint (devnode folds numeric, UUID and hex ids to {id}) and nothing
// else, and both workers took part.
func TestDemo(t *testing.T) {
	connector, _ := buildBinaries(t)
	var out testkit.SyncBuffer
	var mu sync.Mutex
	pids := map[string]int{}
	o := demo.DefaultOptions()
	o.Duration = 20 * time.Second
	o.Rate = 150
	o.ProgressInterval = 5 * time.Second
	o.DrainTimeout = 45 * time.Second
	o.ConnectorBinary = connector
	o.Out = &out
	o.OnProcess = func(name string, pid int) { mu.Lock(); pids[name] = pid; mu.Unlock() }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, o)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}

	if want := int64(o.Rate * o.Duration.Seconds()); res.Generated < want*9/10 || res.Generated > want {
		t.Errorf("generated %d calls, want about %d", res.Generated, want)
	}
	if res.Missing != 0 || res.Delivered != res.Generated {
		t.Errorf("delivered %d of %d (%d missing)", res.Delivered, res.Generated, res.Missing)
	}
	if res.InventoryCalls != res.Generated {
		t.Errorf("the inventory counts %d calls, want %d (each generated call once)", res.InventoryCalls, res.Generated)
	}
	if res.Endpoints < o.APIs*o.EndpointsPerAPI*3/4 || res.Discovered != res.Endpoints || len(res.MissingEndpoints) > 0 {
		t.Errorf("inventory: %d of %d called endpoints discovered (of %d generated); missing %v",
			res.Discovered, res.Endpoints, o.APIs*o.EndpointsPerAPI, res.MissingEndpoints)
	}
	if len(res.Unexpected) > 0 {
		t.Errorf("inventory rows matching no generated endpoint: %v", res.Unexpected)
	}
	if len(res.Workers) != 2 {
		t.Fatalf("workers: %+v", res.Workers)
	}
	leases := 0
	for _, w := range res.Workers {
		leases += w.Leases
		if w.Delivered == 0 {
			t.Errorf("%s delivered nothing: the stream was not shared", w.ID)
		}
	}
	// A lease that just moved may show on both workers for a moment; one that
	// nobody holds is a bug.
	if leases < o.Shards {
		t.Errorf("workers hold %d leases at the end, want %d (one per shard)", leases, o.Shards)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("no call lost: %d/%d generated calls delivered", res.Generated, res.Generated)) {
		t.Errorf("verdict line missing")
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still running after the demo", name, pid)
		}
	}
	t.Logf("figures: %.0f calls/s generated, %.0f calls/s delivered, drain %s, lag max %s, latency p50 %s p99 %s, %d duplicates",
		res.GenerateRate, res.DeliveryRate, res.DrainTime, res.MaxLag, res.LatencyP50, res.LatencyP99, res.Duplicates)
}

var startedRE = regexp.MustCompile(`^demo: started (\S+) \(pid (\d+),`)

// TestDemoInterruptLeavesNoProcess runs the demo command, sends it SIGINT
// (Ctrl-C) while traffic flows, and checks that it exits 130 and that no
// process it started (emulators, workers, generate) survives.
func TestDemoInterruptLeavesNoProcess(t *testing.T) {
	connector, demoBin := buildBinaries(t)
	cmd := exec.Command(demoBin, "--duration", "2m", "--connector-bin", connector, "--progress", "1s")
	cmd.Dir = testenv.RepoRoot(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testkit.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})

	var out strings.Builder
	pids := map[string]int{}
	timeout := time.After(2 * time.Minute)
	signalled := false
	progress := 0
	var waitErr error
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				waitErr = <-exited
				break loop
			}
			out.WriteString(line + "\n")
			if m := startedRE.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[2])
				pids[m[1]] = pid
			}
			// Interrupt once traffic is flowing through both workers.
			if strings.Contains(line, " traffic ") && strings.Contains(line, "generated") {
				progress++
			}
			if progress == 2 && !signalled {
				signalled = true
				if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
			}
		case <-timeout:
			t.Fatalf("demo did not reach traffic or did not stop within 2m:\n%s\nstderr:\n%s", out.String(), stderr.String())
		}
	}
	t.Logf("demo output:\n%s\nstderr:\n%s", out.String(), stderr.String())
	if !signalled {
		t.Fatalf("demo ended before traffic flowed: %v", waitErr)
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want code 130 (interrupted)", waitErr)
	}
	for _, name := range []string{"install-emulators", "kinesis-mock", "dynalite", "worker-1", "worker-2", "generate"} {
		if pids[name] == 0 {
			t.Errorf("no pid reported for %s", name)
		}
	}
	for name, pid := range pids {
		// Orphans of a killed group are reaped by init; allow it a moment.
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("%s (pid %d) survived the interrupted demo", name, pid)
		}
	}
	if !strings.Contains(out.String(), fmt.Sprintf("stopped all %d processes it started", len(pids))) {
		t.Errorf("shutdown line missing")
	}
}

// alive reports whether pid, or any process of the group it led, exists.
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil || syscall.Kill(-pid, 0) == nil
}
