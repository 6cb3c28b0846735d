package procs

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The child half of TestFitCPULimitInAHalfCPUCgroup: it runs inside the cgroup.
func init() {
	if os.Getenv("PROCS_TEST_CHILD") == "1" {
		FitCPULimit(slog.New(slog.DiscardHandler))
		fmt.Printf("GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
		os.Exit(0)
	}
}

// halfCPUCgroup makes a cgroup limited to half a CPU and returns the file a
// process joins it by; "" where this machine lets no test make one.
func halfCPUCgroup(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("apigw-connector-procs-test-%d", os.Getpid())
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil { // cgroup v2
		dir := filepath.Join("/sys/fs/cgroup", name)
		if os.Mkdir(dir, 0o755) != nil {
			return ""
		}
		t.Cleanup(func() { os.Remove(dir) })
		if os.WriteFile(filepath.Join(dir, "cpu.max"), []byte("50000 100000"), 0) != nil {
			return ""
		}
		return filepath.Join(dir, "cgroup.procs")
	}
	dir := filepath.Join("/sys/fs/cgroup/cpu", name) // cgroup v1
	if os.Mkdir(dir, 0o755) != nil {
		return ""
	}
	t.Cleanup(func() { os.Remove(dir) })
	if os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0) != nil ||
		os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte("50000"), 0) != nil {
		return ""
	}
	return filepath.Join(dir, "cgroup.procs")
}

// In a cgroup of half a CPU Go chooses 2; FitCPULimit makes it 1, and
// GOMAXPROCS in the environment still rules.
func TestFitCPULimitInAHalfCPUCgroup(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: Go's choice is 1 already")
	}
	procsFile := halfCPUCgroup(t)
	if procsFile == "" {
		t.Skip("no writable cgroup here (needs root and a cpu controller)")
	}
	for _, tc := range []struct{ env, want string }{{"", "GOMAXPROCS=1"}, {"GOMAXPROCS=2", "GOMAXPROCS=2"}} {
		// The shell joins the cgroup, then becomes the test binary: the child
		// starts inside it, as a task's process does.
		cmd := exec.Command("sh", "-c", `echo $$ > "$1" && shift && exec "$@"`, "sh", procsFile, os.Args[0], "-test.run=^$")
		cmd.Env = append(withoutVar(os.Environ(), "GOMAXPROCS"), "PROCS_TEST_CHILD=1")
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v: %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("env %q in a half-CPU cgroup: child printed %q, want %q", tc.env, got, tc.want)
		}
	}
}

func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
