package demo

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A progress line never shows more delivered than generated, even when
// generate's last report is older than the node's count.
func TestProgressLineNeverShowsMoreDeliveredThanGenerated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		generated, delivered int64
		wantGenerated        int64
	}{
		{"generate's count lags", 1000, 1040, 1040},
		{"in flight", 1200, 1040, 1200},
		{"before the first report", 0, 12, 12},
	}
	re := regexp.MustCompile(`generated +(\d+) \| delivered +(\d+) \| redelivered (\d+)`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			line := progressLine(progressFigures{elapsed: 2500 * time.Millisecond, phase: "traffic", generated: tt.generated, delivered: tt.delivered, redelivered: 3,
				workers: []workerFigures{{id: "worker-1", v: workerView{ok: true, leases: 2, lagMillis: 1500, delivered: 600}}, {id: "worker-2"}}})
			m := re.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line has no generated/delivered/redelivered figures: %q", line)
			}
			gen, _ := strconv.ParseInt(m[1], 10, 64)
			del, _ := strconv.ParseInt(m[2], 10, 64)
			if gen != tt.wantGenerated || del != tt.delivered || gen < del {
				t.Fatalf("generated %d delivered %d, want %d %d: %q", gen, del, tt.wantGenerated, tt.delivered, line)
			}
			for _, w := range []string{"[  2.5s] traffic", "worker-1: 2 leases, lag 1.5s, 600 deliveries", "worker-2: no metrics"} {
				if !strings.Contains(line, w) {
					t.Errorf("line does not say %q: %q", w, line)
				}
			}
		})
	}
}

// Every figure the lines show is defined in the legend printed before them.
func TestLegendExplainsEveryFigure(t *testing.T) {
	t.Parallel()
	for _, w := range []string{"[t] = time since the traffic started", "generated ", "delivered ", "redelivered ", "lease moves", "already held", "per worker"} {
		if !strings.Contains(legend, w) {
			t.Errorf("legend does not explain %q", w)
		}
	}
}

// The per-worker lines and the verdict count redeliveries the same way: a
// worker's redeliveries are among its deliveries (already held), not refusals.
func TestWorkerLinesAndVerdictAgreeOnRedeliveries(t *testing.T) {
	t.Parallel()
	res := &Result{Generated: 6000, Delivered: 6000, Duplicates: 134, Workers: []WorkerResult{
		{ID: "worker-1", Leases: 2, Delivered: 3100, AlreadyHeld: 134},
		{ID: "worker-2", Leases: 2, Delivered: 3034},
	}}
	w1 := workerLine(res.Workers[0])
	for _, want := range []string{"3100 deliveries accepted by the node", "134 of them redeliveries it already held", "0 rejected for good"} {
		if !strings.Contains(w1, want) {
			t.Errorf("worker line does not say %q: %q", want, w1)
		}
	}
	if strings.Contains(w1, "duplicates after lease moves") {
		t.Errorf("worker line calls refusals duplicates: %q", w1)
	}
	v := verdictLine(res)
	if !strings.Contains(v, "6000/6000 generated calls delivered") || !strings.Contains(v, "134 redeliveries after lease moves") {
		t.Errorf("verdict: %q", v)
	}
	var held int64
	for _, w := range res.Workers {
		held += w.AlreadyHeld
	}
	if held != res.Duplicates {
		t.Fatalf("test data: workers already held %d, node refused %d", held, res.Duplicates)
	}
	lost := verdictLine(&Result{Generated: 10, Delivered: 8, Missing: 2})
	if !strings.HasPrefix(lost, "CALLS LOST: 2 of 10") {
		t.Errorf("lost verdict: %q", lost)
	}
}

func TestViewOfReadsAlreadyHeld(t *testing.T) {
	t.Parallel()
	s, err := parseMetrics(strings.NewReader("apigw_connector_pipeline_calls_total{result=\"delivered\"} 50\napigw_connector_node_already_held_total 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v := viewOf(s); v.delivered != 50 || v.alreadyHeld != 4 {
		t.Fatalf("viewOf = %+v", v)
	}
}

// The demo's connector carries the checkout's version, as `make build` stamps it.
func TestBuildArgsStampTheVersion(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root, err := findRepoRoot()
	if err != nil {
		t.Skip(err)
	}
	want := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	want.Dir = root
	v, err := want.Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	args := strings.Join(buildArgs(context.Background(), root, "/tmp/x"), " ")
	if !strings.Contains(args, "-X main.version="+strings.TrimSpace(string(v))+" ") || !strings.Contains(args, "-X main.commit=") {
		t.Fatalf("build args do not stamp version %s: %s", v, args)
	}
	// Outside a checkout it falls back to the binary's own defaults.
	args = strings.Join(buildArgs(context.Background(), t.TempDir(), "/tmp/x"), " ")
	if !strings.Contains(args, "-X main.version=dev -X main.commit=unknown") {
		t.Fatalf("outside git: %s", args)
	}
}
