package firehose

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func TestGoodDeliveryIsAckedAfterEveryCallReachedTheNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	// A slow node: the ack must wait for it, and every call must be at the
	// node by the time the ack arrives.
	e.node.SetLatency(50 * time.Millisecond)
	recs, calls := gen(1, 4, 10)
	start := time.Now()
	r := e.post(delivery{id: "req-good", records: recs, gzip: true})
	if r.status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", r.status, r.raw)
	}
	if r.body.RequestID != "req-good" || r.body.Timestamp == 0 || r.body.ErrorMessage != "" {
		t.Fatalf("ack body %+v, want requestId req-good, a timestamp and no error", r.body)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Fatalf("acked in %s, before a 50 ms node could have taken two messages", time.Since(start))
	}
	e.assertDeliveredOnce(calls)
	if got := e.counter(e.rcv.m.records); got != 4 {
		t.Errorf("records_total %v, want 4", got)
	}
	if got := e.counter(e.rcv.m.deliveries.WithLabelValues("200")); got != 1 {
		t.Errorf(`deliveries_total{code="200"} %v, want 1`, got)
	}
	if e.counter(e.rcv.m.bytes) == 0 {
		t.Errorf("bytes_total not counted")
	}
}

func TestEveryRecordShapeIsDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	o := traffic.DefaultOptions()
	o.Seed = 7
	g := traffic.New(o)
	var all []traffic.Call
	shape := func(name string, f func(evs []traffic.LogEvent) []byte) {
		evs, calls := g.Events(nil, 5)
		all = append(all, calls...)
		for _, bodyGzip := range []bool{false, true} {
			id := name + "-" + map[bool]string{false: "plain", true: "gzip"}[bodyGzip]
			r := e.post(delivery{id: id, records: [][]byte{f(evs)}, gzip: bodyGzip})
			if r.status != http.StatusOK {
				t.Errorf("%s: status %d (%s), want 200", id, r.status, r.raw)
			}
		}
	}
	shape("gzip-document", func(evs []traffic.LogEvent) []byte { return traffic.GzipEnvelope("/aws/apigw/x", "s", evs) })
	shape("json-document", func(evs []traffic.LogEvent) []byte { return traffic.Envelope("/aws/apigw/x", "s", evs) })
	shape("message-lines", func(evs []traffic.LogEvent) []byte {
		var lines []string
		for _, ev := range evs {
			lines = append(lines, ev.Message)
		}
		return []byte(strings.Join(lines, "\n") + "\n")
	})
	shape("control-and-data", func(evs []traffic.LogEvent) []byte {
		return traffic.Gzip(traffic.ControlMessage(), traffic.Envelope("/aws/apigw/x", "s", evs))
	})
	// The second post of each shape (other body encoding) is a new request id
	// carrying the same calls: the call dedup must keep them to one delivery.
	e.assertDeliveredOnce(all)
	if got := e.counter(e.rcv.m.duplicates.WithLabelValues("call")); got != float64(len(all)) {
		t.Errorf(`duplicates_suppressed_total{kind="call"} %v, want %d`, got, len(all))
	}
}

func TestMissingAccessKeyHeaderIsRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	recs, _ := gen(2, 1, 3)
	r := e.post(delivery{id: "req-nokey", records: recs, noKey: true})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", r.status)
	}
	if r.body.RequestID != "req-nokey" || r.body.ErrorMessage == "" || r.body.Timestamp == 0 {
		t.Errorf("error body %+v, want requestId, timestamp and errorMessage", r.body)
	}
	if n := len(e.node.DeliveredIDs()); n != 0 {
		t.Errorf("%d calls reached the node from an unauthenticated delivery", n)
	}
	if got := e.counter(e.rcv.m.authFailures); got != 1 {
		t.Errorf("auth_failures_total %v, want 1", got)
	}
}

func TestAccessKeyChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	recs, _ := gen(3, 1, 2)
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		d    delivery
		want int
	}{
		{"wrong key", delivery{key: str("not-the-key")}, http.StatusUnauthorized},
		{"empty key", delivery{key: str("")}, http.StatusUnauthorized},
		{"key prefix", delivery{key: str(testKey[:10])}, http.StatusUnauthorized},
		{"key with suffix", delivery{key: str(testKey + "x")}, http.StatusUnauthorized},
		{"no key, malformed body", delivery{noKey: true, body: []byte("{")}, http.StatusUnauthorized},
		{"right key", delivery{}, http.StatusOK},
	} {
		tc.d.id = "req-" + strings.ReplaceAll(tc.name, " ", "-")
		tc.d.records = recs
		if r := e.post(tc.d); r.status != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.name, r.status, r.raw, tc.want)
		}
	}
	if got := e.counter(e.rcv.m.authFailures); got != 5 {
		t.Errorf("auth_failures_total %v, want 5", got)
	}
}

func TestMalformedDeliveriesAre400(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	for _, tc := range []struct {
		name string
		d    delivery
	}{
		{"not json", delivery{body: []byte("hello")}},
		{"truncated json", delivery{body: []byte(`{"requestId":"x","records":[{"data":"`)}},
		{"bad base64", delivery{body: []byte(`{"requestId":"req-bad-base64","timestamp":1,"records":[{"data":"!!!not base64"}]}`)}},
		{"records not an array", delivery{body: []byte(`{"requestId":"req-records-not-an-array","timestamp":1,"records":{"data":""}}`)}},
		{"data not a string", delivery{body: []byte(`{"requestId":"req-data-not-a-string","timestamp":1,"records":[{"data":12}]}`)}},
		{"no requestId", delivery{body: []byte(`{"timestamp":1,"records":[]}`)}},
		{"trailing data", delivery{body: []byte(`{"requestId":"req-trailing-data","timestamp":1,"records":[]} {}`)}},
		{"gzip header, plain body", delivery{header: map[string]string{"Content-Encoding": "gzip"}}},
		{"unknown encoding", delivery{header: map[string]string{"Content-Encoding": "br"}}},
		{"body gzipped twice", delivery{body: gz(firehoseBody("req-body-gzipped-twice", nil)), gzip: true}},
		{"id mismatch", delivery{body: firehoseBody("another-id", nil)}},
		{"no id header", delivery{header: map[string]string{HeaderRequestID: ""}}},
	} {
		tc.d.id = "req-" + strings.ReplaceAll(tc.name, " ", "-")
		r := e.post(tc.d)
		if r.status != http.StatusBadRequest || r.body.ErrorMessage == "" {
			t.Errorf("%s: status %d (%s), want 400 with an errorMessage", tc.name, r.status, r.raw)
		}
	}
	if n := len(e.node.DeliveredIDs()); n != 0 {
		t.Errorf("%d calls reached the node from malformed deliveries", n)
	}
}

func TestOversizedDeliveriesAre413(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxBodyBytes = 64 << 10
	e := newEnv(t, cfg)
	big := make([]byte, 100<<10)
	bomb := gz(firehoseBody("req-bomb", [][]byte{make([]byte, 8<<20)})) // ~16 KB on the wire
	for _, tc := range []struct {
		name string
		d    delivery
	}{
		{"plain", delivery{id: "req-plain", records: [][]byte{big}}},
		{"gzip", delivery{id: "req-gzip", records: [][]byte{big}, gzip: true}},
		{"gzip bomb", delivery{id: "req-bomb", body: bomb, header: map[string]string{"Content-Encoding": "gzip"}}},
	} {
		if r := e.post(tc.d); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status %d (%s), want 413", tc.name, r.status, r.raw)
		}
	}
	// A body just under the cap is fine.
	recs, calls := gen(4, 1, 5)
	if r := e.post(delivery{id: "req-small", records: recs}); r.status != http.StatusOK {
		t.Fatalf("small delivery: status %d (%s)", r.status, r.raw)
	}
	e.assertDeliveredOnce(calls)
}

func TestNodeDownIs503ThenRetrySucceedsWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.AckDeadline = 300 * time.Millisecond
	e := newEnv(t, cfg)
	recs, calls := gen(5, 3, 10)
	d := delivery{id: "req-down", records: recs, gzip: true}

	e.node.SetFailing(http.StatusServiceUnavailable, time.Hour)
	r := e.post(d)
	if r.status != http.StatusServiceUnavailable || r.body.RequestID != d.id || r.body.ErrorMessage == "" {
		t.Fatalf("node down: reply %d %+v, want 503 with requestId and errorMessage", r.status, r.body)
	}
	if n := len(e.node.DeliveredIDs()); n != 0 {
		t.Fatalf("%d calls delivered while the node was down", n)
	}
	e.node.SetFailing(0, 0)
	e.deliverUntilAcked(d, 20)
	// A call the ack deadline cut between its request reaching the node and
	// the reply may have its request resent: refused as a duplicate, kept once.
	testenv.AssertNoneLost(t, e.node, calls)
	before := e.node.Stats()

	// The ack got lost, say: Firehose retries once more; nothing is sent again.
	if r := e.post(d); r.status != http.StatusOK || r.body.RequestID != d.id {
		t.Fatalf("retry of an acked delivery: %d %+v, want 200 at once", r.status, r.body)
	}
	if after := e.node.Stats(); after.Requests != before.Requests || after.Responses != before.Responses {
		t.Fatalf("the retry of an acked delivery sent messages: %+v -> %+v", before, after)
	}
	if got := e.counter(e.rcv.m.duplicates.WithLabelValues("request")); got != 1 {
		t.Errorf(`duplicates_suppressed_total{kind="request"} %v, want 1`, got)
	}
	if got := e.counter(e.rcv.m.deliveries.WithLabelValues("503")); got < 1 {
		t.Errorf(`deliveries_total{code="503"} %v, want >= 1`, got)
	}
}

func TestPartlyDeliveredBatchRetrySendsOnlyTheRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	recsA, callsA := gen(6, 2, 10)
	e.deliverUntilAcked(delivery{id: "req-a", records: recsA}, 5)
	// A new delivery repeating A's records (as a retry after a partial
	// delivery does) plus new ones: only the new calls go to the node.
	recsB, callsB := gen(60, 2, 10)
	e.deliverUntilAcked(delivery{id: "req-b", records: append(recsA, recsB...)}, 5)
	e.assertDeliveredOnce(append(callsA, callsB...))
	if got := e.counter(e.rcv.m.duplicates.WithLabelValues("call")); got != float64(len(callsA)) {
		t.Errorf(`duplicates_suppressed_total{kind="call"} %v, want %d`, got, len(callsA))
	}
}

func TestConcurrencyLimitIs429(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxConcurrentDeliveries = 1
	e := newEnv(t, cfg)
	e.node.SetLatency(500 * time.Millisecond)
	recs, calls := gen(8, 1, 1)
	var wg sync.WaitGroup
	var first reply
	wg.Go(func() { first = e.post(delivery{id: "req-first", records: recs}) })
	deadline := time.Now().Add(5 * time.Second)
	for e.counter(e.rcv.m.inProgress) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first delivery never started")
		}
		time.Sleep(time.Millisecond)
	}
	r := e.post(delivery{id: "req-second", records: recs})
	if r.status != http.StatusTooManyRequests || r.body.ErrorMessage == "" {
		t.Errorf("second delivery: %d (%s), want 429 with an errorMessage", r.status, r.raw)
	}
	wg.Wait()
	if first.status != http.StatusOK {
		t.Fatalf("first delivery: %d (%s), want 200", first.status, first.raw)
	}
	e.assertDeliveredOnce(calls)
}

func TestRetryOverlappingItsOriginalWaitsForIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	e.node.SetLatency(200 * time.Millisecond)
	recs, calls := gen(9, 1, 3)
	d := delivery{id: "req-overlap", records: recs}
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	wg.Go(func() { replies[0] = e.post(d) })
	deadline := time.Now().Add(5 * time.Second)
	for e.counter(e.rcv.m.inProgress) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first delivery never started")
		}
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() { replies[1] = e.post(d) })
	wg.Wait()
	for i, r := range replies {
		if r.status != http.StatusOK {
			t.Errorf("attempt %d: %d (%s), want 200", i, r.status, r.raw)
		}
	}
	e.assertDeliveredOnce(calls)
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	writeKeys := func(content string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(keyFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(keyFile, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	writeKeys("# rotated by the secret manager\nfile-key-1\n\n", time.Now().Add(-time.Hour))
	cfg := testConfig()
	cfg.AccessKeys = []string{"old-key", "new-key"}
	cfg.AccessKeyFile = keyFile
	e := newEnv(t, cfg)
	recs, _ := gen(10, 1, 1)
	str := func(s string) *string { return &s }
	try := func(step, key string, want int) {
		t.Helper()
		if r := e.post(delivery{id: "req-" + step + "-" + key, records: recs, key: str(key)}); r.status != want {
			t.Errorf("%s: key %s: status %d (%s), want %d", step, key, r.status, r.raw, want)
		}
	}
	try("both static keys", "old-key", 200)
	try("both static keys", "new-key", 200)
	try("file", "file-key-1", 200)
	try("file", "file-key-2", 401)

	writeKeys("file-key-2\n", time.Now())
	try("after reload", "file-key-2", 200)
	try("after reload", "file-key-1", 401)
	try("after reload", "old-key", 200)

	// A file that disappears keeps the previous keys rather than locking out.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	try("file removed", "file-key-2", 200)
}

func TestHealthPathNeedsNoKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	resp, err := e.hc.Get("http://" + e.rcv.Addr().String() + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d, want 200", resp.StatusCode)
	}
	if !e.rcv.Ready() {
		t.Fatal("Ready() false while serving")
	}
	resp, err = e.hc.Get(e.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET on the delivery path: %d, want 405", resp.StatusCode)
	}
}

func TestEmptyDeliveryIsAcked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	if r := e.post(delivery{id: "req-empty"}); r.status != http.StatusOK {
		t.Fatalf("empty delivery: %d (%s), want 200", r.status, r.raw)
	}
	if r := e.post(delivery{id: "req-empty-records", records: [][]byte{{}}}); r.status != http.StatusOK {
		t.Fatalf("delivery of an empty record: %d (%s), want 200", r.status, r.raw)
	}
}

func TestShutdownAbandonsDeliveriesInProgress(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.AckDeadline = 30 * time.Second
	e := newEnv(t, cfg)
	e.node.SetFailing(http.StatusServiceUnavailable, time.Hour)
	recs, _ := gen(12, 1, 2)
	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(firehoseBody("req-shutdown", recs)))
		req.Header.Set(HeaderRequestID, "req-shutdown")
		req.Header.Set(HeaderAccessKey, testKey)
		resp, err := e.hc.Do(req)
		if err != nil {
			status <- 0 // connection closed by the shutdown: Firehose retries
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.counter(e.rcv.m.inProgress) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("delivery never started")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.rcv.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned nil although a delivery could not finish in time")
	}
	if e.rcv.Ready() {
		t.Error("Ready() true after Shutdown")
	}
	if got := <-status; got == http.StatusOK {
		t.Fatal("a delivery whose calls were abandoned was acknowledged")
	}
	if e.counter(e.rcv.m.inProgress) != 0 {
		t.Error("a delivery is still in progress after Shutdown returned")
	}
}
