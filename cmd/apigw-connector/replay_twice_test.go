package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// Replaying the same input twice is safe, and the second summary says so; the
// calls the node already held are not logged one by one.
func TestReplayTwiceSaysTheNodeAlreadyHeldTheCalls(t *testing.T) {
	t.Parallel()
	_, url := startDevnode(t, devnode.DefaultOptions(), nil)
	gzFile, linesFile, ids := genInputs(t, 7, 40)
	cfg := writeConfig(t, url, "")
	for run := range 2 {
		code, out, errs := runCmd(t, "replay", "--config", cfg, "--log-format", "text", gzFile, linesFile)
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s\n%s", run, code, out, errs)
		}
		held := fmt.Sprintf("already held:    %d of the delivered", len(ids))
		switch {
		case run == 0 && strings.Contains(out, "already held"):
			t.Errorf("first run reports calls already held:\n%s", out)
		case run == 1 && !strings.Contains(out, held):
			t.Errorf("second run: summary lacks %q:\n%s", held, out)
		}
		if n := strings.Count(errs, "\n"); n > 10 {
			t.Errorf("run %d: %d log lines for %d calls, want a few, not one per call:\n%s", run, n, len(ids), errs)
		}
	}
}
