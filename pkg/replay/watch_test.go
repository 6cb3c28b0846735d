package replay

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/source/file"
)

type upNode bool

func (u upNode) Up() bool { return bool(u) }

// stalledForwarder is a forwarder with one call sending and none settled for d.
func stalledForwarder(t *testing.T, d time.Duration) *Forwarder {
	t.Helper()
	c := newFakeClock()
	next := &stubForwarder{block: true, entered: make(chan struct{}, 1)}
	f := NewForwarder(next, nil, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Deliver(ctx, &accesslog.APICall{}) }()
	<-next.entered
	c.Advance(d)
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func TestWatchGivesUpOnceWhenMaxWaitPasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stalled time.Duration
		want    int
	}{{59 * time.Second, 0}, {time.Minute, 1}, {time.Hour, 1}} {
		var out bytes.Buffer
		var calls atomic.Int32
		var got atomic.Int64
		w := &Watch{Forwarder: stalledForwarder(t, tc.stalled), Node: upNode(false), Metrics: prometheus.NewRegistry(),
			Term: NewTerminal(&out), MaxWait: time.Minute, OnGiveUp: func(d time.Duration) { calls.Add(1); got.Store(int64(d)) }}
		now := time.Now()
		w.tick(now)
		w.tick(now.Add(watchTick))
		if n := int(calls.Load()); n != tc.want {
			t.Fatalf("stalled %s, max wait 1m: OnGiveUp called %d times, want %d", tc.stalled, n, tc.want)
		}
		if tc.want == 1 && time.Duration(got.Load()) != tc.stalled {
			t.Errorf("OnGiveUp(%s), want the stall, %s", time.Duration(got.Load()), tc.stalled)
		}
	}
}

// The line is drawn from one snapshot of the metrics: calls read, and once the
// input was read to its end, the total without filtered and duplicate calls.
func TestWatchDrawsTheLineFromTheMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	parsed := prometheus.NewCounter(prometheus.CounterOpts{Name: "apigw_connector_parse_calls_total"})
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apigw_connector_pipeline_calls_total"}, []string{"result"})
	reg.MustRegister(parsed, calls)
	parsed.Add(120)
	calls.WithLabelValues("filtered").Add(15)
	calls.WithLabelValues("duplicate").Add(5)

	var out bytes.Buffer
	var readAll atomic.Bool
	w := &Watch{Forwarder: NewForwarder(&stubForwarder{}, nil, newFakeClock()), Node: upNode(true), Metrics: reg,
		Term: NewTerminal(&out), ReadAll: &readAll}
	now := time.Now()
	w.tick(now)
	before := out.String()
	readAll.Store(true)
	w.tick(now.Add(watchTick))
	after := strings.TrimPrefix(out.String(), before)
	wantBefore := Line(Sample{Total: -1, Read: 120, NodeUp: true})
	wantAfter := Line(Sample{Total: 100, Read: 120, NodeUp: true})
	if !strings.Contains(before, wantBefore) {
		t.Errorf("before the input was read: %q, want it to show %q", before, wantBefore)
	}
	if !strings.Contains(after, wantAfter) {
		t.Errorf("after: %q, want it to show %q", after, wantAfter)
	}
	drawn := out.Len()
	w.Stop()
	if out.Len() <= drawn {
		t.Error("Stop did not clear the line")
	}
}

// Without a terminal or a max wait the watch runs nothing, and Stop returns.
func TestWatchWithNothingToDoStops(t *testing.T) {
	t.Parallel()
	w := &Watch{Forwarder: NewForwarder(&stubForwarder{}, nil, newFakeClock()), Node: upNode(true), Metrics: prometheus.NewRegistry()}
	w.Start()
	if w.Stop() {
		t.Fatal("gave up with no max wait")
	}
}

func TestCountEventsCountsLinesAndSubscriptionDocuments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lines := filepath.Join(dir, "calls.jsonl")
	if err := os.WriteFile(lines, []byte("{\"requestId\":\"a\"}\n\n  \n{\"requestId\":\"b\"}\n{\"requestId\":\"c\"}"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],` +
		`"logEvents":[{"id":"1","timestamp":1,"message":"{}"},{"id":"2","timestamp":2,"message":"{}"}]}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for range 3 { // three concatenated documents, as an export holds them
		_, _ = zw.Write([]byte(doc))
	}
	_ = zw.Close()
	docs := filepath.Join(dir, "export.gz")
	if err := os.WriteFile(docs, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := CountEvents(context.Background(), []string{lines, docs}, cwlogs.NewDecoder(cwlogs.Options{}), file.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if n != 3+6 {
		t.Fatalf("counted %d events, want 9 (3 lines, 3 documents of 2)", n)
	}
	if _, err := CountEvents(context.Background(), []string{filepath.Join(dir, "missing")}, cwlogs.NewDecoder(cwlogs.Options{}), file.DefaultOptions()); !os.IsNotExist(err) {
		t.Fatalf("a missing file: %v, want not-exist", err)
	}
}
