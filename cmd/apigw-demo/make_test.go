package main

import (
	"os/exec"
	"strings"
	"testing"
)

// `make demo` says what it is doing before Go compiles anything: a first
// run compiles for up to a minute, and a silent terminal looks hung.
func TestMakeDemoSpeaksBeforeItCompiles(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cmd := exec.Command("make", "-n", "demo")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n demo: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	firstGo := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "go ") || strings.Contains(l, " go ") {
			firstGo = i
			break
		}
	}
	if firstGo < 0 {
		t.Fatalf("make demo runs no go command:\n%s", out)
	}
	if firstGo == 0 || !strings.HasPrefix(lines[0], "echo ") || !strings.Contains(lines[0], "compiling") {
		t.Fatalf("make demo compiles before it says so:\n%s", out)
	}
}
