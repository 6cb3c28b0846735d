package procs

import (
	"bytes"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// GOMAXPROCS in the environment rules: nothing is changed or logged.
func TestFitCPULimitHonoursTheEnvironment(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	want := before + 1
	runtime.GOMAXPROCS(want)
	t.Setenv("GOMAXPROCS", strconv.Itoa(want))
	var buf bytes.Buffer
	FitCPULimit(slog.New(slog.NewTextHandler(&buf, nil)))
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("GOMAXPROCS = %d, want %d as the environment says", got, want)
	}
	if buf.Len() > 0 {
		t.Fatalf("logged %q, want nothing", buf.String())
	}
}

// Never below 1, never above the CPUs the process may run on.
func TestFitCPULimitStaysWithinTheMachine(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	t.Setenv("GOMAXPROCS", "") // restored after the test; unset for it
	os.Unsetenv("GOMAXPROCS")
	FitCPULimit(slog.New(slog.DiscardHandler))
	if got := runtime.GOMAXPROCS(0); got < 1 || got > runtime.NumCPU() {
		t.Fatalf("GOMAXPROCS = %d, want 1..%d", got, runtime.NumCPU())
	}
}
