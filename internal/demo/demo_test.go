package demo

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/emulator"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	const text = `# HELP apigw_connector_lease_held Leases this worker holds.
# TYPE apigw_connector_lease_held gauge
apigw_connector_lease_held 2
apigw_connector_kinesis_millis_behind_latest{shard="shardId-000000000001"} 1500
apigw_connector_kinesis_millis_behind_latest{shard="shardId-000000000003"} 20
apigw_connector_pipeline_calls_total{result="delivered"} 1.234e+03
apigw_connector_pipeline_calls_total{result="rejected"} 7
apigw_connector_kinesis_records_read_total{shard="shardId-000000000001"} 10
apigw_connector_kinesis_records_read_total{shard="shardId-000000000003"} 5
weird{a="x\"y",b="z"} 1 1700000000000
`
	s, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 8 {
		t.Fatalf("%d samples, want 8", len(s))
	}
	if last := s[7]; last.name != "weird" || last.labels["a"] != `x"y` || last.labels["b"] != "z" || last.value != 1 {
		t.Errorf("escaped labels: %+v", last)
	}
	v := viewOf(s)
	want := workerView{ok: true, leases: 2, lagMillis: 1500, delivered: 1234, rejected: 7, records: 15}
	if v != want {
		t.Errorf("viewOf = %+v, want %+v", v, want)
	}
	// Without the lease gauge, the shards with a lag gauge are the leases.
	if v := viewOf(s[3:]); v.leases != 0 {
		t.Errorf("no lease or lag gauge: leases = %d, want 0", v.leases)
	}
	if v := viewOf(s[1:]); v.leases != 2 {
		t.Errorf("leases from lag gauges = %d, want 2", v.leases)
	}
	if _, err := parseMetrics(strings.NewReader("x{a=1} 2\n")); err == nil {
		t.Error("bad labels: want error")
	}
	if _, err := parseMetrics(strings.NewReader("x NaNo\n")); err == nil {
		t.Error("bad value: want error")
	}
}

func TestMatchInventory(t *testing.T) {
	t.Parallel()
	eps := []traffic.ManifestEndpoint{
		{Method: "GET", Host: "h", CalledTemplate: "/prod/pets/{petId}", Calls: 5},
		{Method: "GET", Host: "h", CalledTemplate: "/prod/pets/search", Calls: 1},
		{Method: "GET", Host: "h", CalledTemplate: "/products/{sku}", Calls: 2},
		{Method: "DELETE", Host: "h", CalledTemplate: "/prod/pets/{petId}", Calls: 0},
	}
	inv := []devnode.Endpoint{
		{Method: "GET", Host: "h", Path: "/prod/pets/{id}", Calls: 5, Statuses: map[int]int64{200: 4, 404: 1}},
		{Method: "GET", Host: "h", Path: "/prod/pets/search", Calls: 1},
		{Method: "GET", Host: "h", Path: "/products/red-cotton-1", Calls: 1, Statuses: map[int]int64{200: 1}},
		{Method: "GET", Host: "h", Path: "/products/eco-pro-7", Calls: 1, Statuses: map[int]int64{200: 1}},
		{Method: "GET", Host: "other", Path: "/prod/pets/{id}", Calls: 1},
		{Method: "POST", Host: "h", Path: "/prod/pets/{id}", Calls: 1},
	}
	groups, unexpected := matchInventory(eps, inv)
	if got := len(groups[0].rows); got != 1 || groups[0].path() != "/prod/pets/{id}" {
		t.Errorf("pets/{petId}: %d rows, path %q", got, groups[0].path())
	}
	if len(groups[1].rows) != 1 || groups[1].rows[0].Path != "/prod/pets/search" {
		t.Errorf("the literal template must win over the parameter: %+v", groups[1].rows)
	}
	if g := groups[2]; len(g.rows) != 2 || g.calls() != 2 || g.path() != "/products/{sku} (2 distinct paths)" || formatStatuses(g.statuses()) != "200:2" {
		t.Errorf("slug endpoint: %d rows, %d calls, %q, %q", len(g.rows), g.calls(), g.path(), formatStatuses(g.statuses()))
	}
	if len(groups[3].rows) != 0 {
		t.Errorf("DELETE matched %v", groups[3].rows)
	}
	if len(unexpected) != 2 {
		t.Errorf("unexpected = %v, want the other host and the POST", unexpected)
	}
}

func TestLatencies(t *testing.T) {
	t.Parallel()
	base := time.UnixMilli(1_764_000_000_000)
	m := &traffic.Manifest{RequestIDs: []string{"a", "b", "c"}, RequestTimes: []int64{base.UnixMilli(), base.UnixMilli(), base.UnixMilli()}}
	calls := []devnode.Call{
		{ID: "a", RequestAt: base.Add(100 * time.Millisecond)},
		{ID: "b", RequestAt: base.Add(300 * time.Millisecond)},
		{ID: "c", RequestAt: base.Add(200 * time.Millisecond)},
		{ID: "other", RequestAt: base.Add(time.Hour)},
	}
	p50, p99, mx := latencies(calls, m)
	if p50 != 200*time.Millisecond || p99 != 300*time.Millisecond || mx != 300*time.Millisecond {
		t.Errorf("latencies = %s %s %s", p50, p99, mx)
	}
}

// TestProcStopKillsGroup checks that stopping a child also ends what it
// forked (its process group), including a child that ignores SIGTERM.
func TestProcStopKillsGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, script string
	}{
		{"polite", "sleep 60 & echo forked; wait"},
		{"stubborn", "trap '' TERM; sleep 60 & echo forked; wait; sleep 60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := startProc(tc.name, exec.Command("sh", "-c", tc.script), dir+"/"+tc.name+".log")
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(p.logTail(100), "forked") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			p.stop(300*time.Millisecond, nil)
			if !p.exited() {
				t.Fatal("stop returned before the process was reaped")
			}
			// The grandchild is killed with the group; it may take a moment to be reaped by init.
			deadline = time.Now().Add(5 * time.Second)
			for emulator.ProcessGroupAlive(p.pid()) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if emulator.ProcessGroupAlive(p.pid()) {
				t.Fatalf("process group %d still has members after stop", p.pid())
			}
		})
	}
}
