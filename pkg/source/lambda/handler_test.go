package lambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/source/firehose"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// summaries returns the invocation summary lines logged so far.
func summaries(t testing.TB, logs *testkit.SyncBuffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "invocation done" || strings.HasPrefix(m["msg"].(string), "invocation failed") {
			out = append(out, m)
		}
	}
	return out
}

// env is the real chain: handler -> pipeline -> node client -> devnode.
type env struct {
	node *devnode.Server
	h    *Handler
	logs *testkit.SyncBuffer
	reg  *prometheus.Registry // the chain's metrics (node client, pipeline)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	c := testenv.StartChain(t, log)
	e := &env{logs: logs, node: c.Node, reg: c.Registry}
	e.h = NewHandler(c.Pipeline, log)
	e.h.Dedup = firehose.NewIDSet(100_000)
	return e
}

func (e *env) assertDeliveredOnce(t testing.TB, calls []traffic.Call) {
	t.Helper()
	testenv.AssertDeliveredOnce(t, e.node, calls)
}

func generator(seed int64) *traffic.Generator {
	o := traffic.DefaultOptions()
	o.Seed = seed
	return traffic.New(o)
}

// awslogsPayload is what CloudWatch Logs sends a subscribed function.
func awslogsPayload(doc []byte) []byte {
	b, _ := json.Marshal(events.CloudwatchLogsEvent{AWSLogs: events.CloudwatchLogsRawData{Data: base64.StdEncoding.EncodeToString(doc)}})
	return b
}

// kinesisPayload is what an event source mapping sends: one record per data.
func kinesisPayload(data ...[]byte) ([]byte, []string) {
	ev := events.KinesisEvent{}
	var seqs []string
	for i, d := range data {
		seq := "4959" + strconv.Itoa(1000000+i)
		seqs = append(seqs, seq)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			AwsRegion: "us-east-1", EventID: "shardId-000000000000:" + seq, EventName: "aws:kinesis:record",
			EventSource: "aws:kinesis", EventSourceArn: "arn:aws:kinesis:us-east-1:123456789012:stream/apigw-logs",
			EventVersion: "1.0",
			Kinesis:      events.KinesisRecord{Data: d, PartitionKey: "pk-" + strconv.Itoa(i), SequenceNumber: seq, KinesisSchemaVersion: "1.0"},
		})
	}
	b, _ := json.Marshal(ev)
	return b, seqs
}

func withDeadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSubscriptionEventIsDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	evs, calls := generator(1).Events(nil, 50)
	out, err := e.h.Invoke(withDeadline(t, 30*time.Second), awslogsPayload(traffic.GzipEnvelope("/aws/apigw/a", "s", evs)))
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	if string(out) != "null" {
		t.Errorf("output %q, want null", out)
	}
	e.assertDeliveredOnce(t, calls)
	sums := summaries(t, e.logs)
	if len(sums) != 1 {
		t.Fatalf("%d summary lines, want 1", len(sums))
	}
	for k, want := range map[string]float64{"events": 50, "calls": 50, "delivered": 50, "rejected": 0, "failed": 0} {
		if sums[0][k] != want {
			t.Errorf("summary %s = %v, want %v", k, sums[0][k], want)
		}
	}
	if _, ok := sums[0]["duration_ms"]; !ok {
		t.Error("summary has no duration_ms")
	}
}

func TestControlMessageAndGarbageAreNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := withDeadline(t, 30*time.Second)
	for name, payload := range map[string][]byte{
		"control message": awslogsPayload(traffic.Gzip(traffic.ControlMessage())),
		"not gzip":        awslogsPayload([]byte("garbage")),
		"not base64":      []byte(`{"awslogs":{"data":"%%%"}}`),
	} {
		if _, err := e.h.Invoke(ctx, payload); err != nil {
			t.Errorf("%s: %v, want success (retrying cannot help)", name, err)
		}
	}
}

func TestPermanentRejectionSettles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.node.SetFailing(http.StatusBadRequest, time.Hour)
	evs, _ := generator(2).Events(nil, 5)
	if _, err := e.h.Invoke(withDeadline(t, 30*time.Second), awslogsPayload(traffic.GzipEnvelope("/aws/apigw/a", "s", evs))); err != nil {
		t.Fatalf("invoke: %v, want success: rejected calls are settled", err)
	}
	if s := summaries(t, e.logs); len(s) != 1 || s[0]["rejected"] != float64(5) {
		t.Fatalf("summaries %v, want one with rejected=5", s)
	}
}

func TestStalledNodeFailsTheSubscriptionEventBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.node.SetFailing(http.StatusServiceUnavailable, time.Hour)
	evs, calls := generator(3).Events(nil, 20)
	payload := awslogsPayload(traffic.GzipEnvelope("/aws/apigw/a", "s", evs))
	ctx := withDeadline(t, 3*time.Second)
	dl, _ := ctx.Deadline()
	_, err := e.h.Invoke(ctx, payload)
	if !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("err %v, want ErrNotDelivered", err)
	}
	if time.Now().After(dl) {
		t.Fatalf("returned after the invocation deadline")
	}
	if s := summaries(t, e.logs); len(s) != 1 || s[0]["failed"] != float64(20) {
		t.Fatalf("summaries %v, want one with failed=20", s)
	}
	// Lambda retries the event once the node is back: the node keeps every call once.
	e.node.SetFailing(0, 0)
	before := e.sent(t)
	if before.retries == 0 {
		t.Fatalf("no retries counted while the node failed: the metric names are wrong (%+v)", before)
	}
	if _, err := e.h.Invoke(withDeadline(t, 30*time.Second), payload); err != nil {
		t.Fatalf("retry: %v", err)
	}
	// The retry sends each message once: one answered attempt per message, none retried.
	if d := e.sent(t).minus(before); d != (sentCounts{requests: 20, responses: 20}) {
		t.Errorf("the retry invocation sent %+v, want 20 requests and 20 responses, no retry", d)
	}
	// Not "every request message arrives once": a call whose last attempt
	// was on the wire when the deadline cut it (written, reply not yet
	// seen) may still be read by the node after it is back, before or after
	// the retry's copy; nothing the connector does afterwards can recall it,
	// and the retry must resend (that attempt's fate is unknown). The node
	// refuses whichever copy comes second as a duplicate request id and
	// keeps the call once. So: none lost, each call accepted and completed
	// exactly once, at most one extra copy per call (only the attempt in
	// flight at the deadline), and every extra copy refused as a duplicate.
	assertKeptOnce(t, e.node, calls, 2)
}

// sentCounts are the node client's answered attempts by message kind, and
// its retried attempts.
type sentCounts struct{ requests, responses, retries float64 }

func (a sentCounts) minus(b sentCounts) sentCounts {
	return sentCounts{a.requests - b.requests, a.responses - b.responses, a.retries - b.retries}
}

func (e *env) sent(t testing.TB) sentCounts {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var c sentCounts
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			switch mf.GetName() {
			case "apigw_connector_node_messages_sent_total":
				for _, l := range m.GetLabel() {
					switch {
					case l.GetName() == "kind" && l.GetValue() == "request":
						c.requests += v
					case l.GetName() == "kind" && l.GetValue() == "response":
						c.responses += v
					}
				}
			case "apigw_connector_node_retries_total", "apigw_connector_node_errors_total":
				c.retries += v
			}
		}
	}
	return c
}

// assertKeptOnce fails unless the node accepted every call's request and
// response exactly once, no request message of a call arrived more than
// maxArrivals times, and every extra arrival was refused as a duplicate
// request id (no other refusal).
func assertKeptOnce(t testing.TB, n *devnode.Server, calls []traffic.Call, maxArrivals int) {
	t.Helper()
	testenv.AssertNoneLost(t, n, calls)
	arrivals := n.DeliveredIDs() // node ids, and log request ids as the connector keeps them
	for _, c := range calls {
		k, ok := arrivals[c.RequestID]
		if !ok {
			k = arrivals[devnode.AsNodeIDPrefix(c.RequestID)]
		}
		if k > maxArrivals {
			t.Errorf("call %s: its request message arrived %d times, want at most %d", c.RequestID, k, maxArrivals)
		}
	}
	st := n.Stats()
	want := int64(len(calls))
	if st.Requests != want || st.Responses != want || st.Completed != want {
		t.Errorf("node accepted %d requests and %d responses, completed %d calls; want %d each", st.Requests, st.Responses, st.Completed, want)
	}
	for reason, k := range st.Rejects {
		if reason != devnode.ReasonDuplicateRequestID.String() {
			t.Errorf("node refused %d messages as %s; only duplicate request ids are expected", k, reason)
		}
	}
}

func TestKinesisBatchIsDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var data [][]byte
	var calls []traffic.Call
	for _, r := range generator(4).Records(5, 10, 30) {
		data = append(data, r.Data)
		calls = append(calls, r.Calls...)
	}
	payload, _ := kinesisPayload(data...)
	out, err := e.h.Invoke(withDeadline(t, 30*time.Second), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var resp events.KinesisEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if resp.BatchItemFailures == nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batchItemFailures %v, want an empty list", resp.BatchItemFailures)
	}
	if !bytes.Contains(out, []byte(`"batchItemFailures":[]`)) {
		t.Errorf("output %s: want an explicit empty batchItemFailures", out)
	}
	e.assertDeliveredOnce(t, calls)
}

// TestKinesisPartialBatchListsExactlyTheUndeliveredRecords: with the node
// stalled, only the record whose calls must reach the node fails; the ones
// that settle without it (control message, undecodable data, calls already
// delivered in an earlier invocation) do not.
func TestKinesisPartialBatchListsExactlyTheUndeliveredRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := generator(5)
	recs := g.Records(3, 5, 5)
	// An earlier invocation delivered record 0's calls and record 2's calls.
	first, _ := kinesisPayload(recs[0].Data, recs[2].Data)
	if _, err := e.h.Invoke(withDeadline(t, 30*time.Second), first); err != nil {
		t.Fatalf("first invocation: %v", err)
	}

	e.node.SetFailing(http.StatusServiceUnavailable, time.Hour)
	payload, seqs := kinesisPayload(
		recs[0].Data, // delivered before
		traffic.Gzip(traffic.ControlMessage()),
		recs[1].Data, // must reach the stalled node: fails
		[]byte("not a subscription record"),
		recs[2].Data, // delivered before
	)
	ctx := withDeadline(t, 2*time.Second)
	out, err := e.h.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var resp events.KinesisEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != seqs[2] {
		t.Fatalf("batchItemFailures %+v, want exactly [%s]", resp.BatchItemFailures, seqs[2])
	}

	// Lambda retries from the failed record once the node is back.
	e.node.SetFailing(0, 0)
	retry, _ := kinesisPayload(recs[1].Data, []byte("not a subscription record"), recs[2].Data)
	out, err = e.h.Invoke(withDeadline(t, 30*time.Second), retry)
	if err != nil || !bytes.Contains(out, []byte(`"batchItemFailures":[]`)) {
		t.Fatalf("retry: %s, %v; want no failures", out, err)
	}
	// A request the deadline cut mid-flight (the node recovering just then)
	// is resent on the retry; the node refuses the repeat and keeps the call once.
	testenv.AssertNoneLost(t, e.node, append(append(recs[0].Calls, recs[1].Calls...), recs[2].Calls...))
}

func TestKinesisStalledNodeFailsEveryRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.node.SetFailing(http.StatusServiceUnavailable, time.Hour)
	var data [][]byte
	for _, r := range generator(6).Records(4, 3, 3) {
		data = append(data, r.Data)
	}
	payload, seqs := kinesisPayload(data...)
	out, err := e.h.Invoke(withDeadline(t, 2*time.Second), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var resp events.KinesisEventResponse
	_ = json.Unmarshal(out, &resp)
	var got []string
	for _, f := range resp.BatchItemFailures {
		got = append(got, f.ItemIdentifier)
	}
	if strings.Join(got, ",") != strings.Join(seqs, ",") {
		t.Fatalf("batchItemFailures %v, want every record in order %v", got, seqs)
	}
}

func TestInvokeRejectsOtherEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := withDeadline(t, 5*time.Second)
	for _, payload := range []string{`{"Records":[{"eventSource":"aws:sqs"}]}`, `{"foo":1}`, `[]`, `nonsense`} {
		if _, err := e.h.Invoke(ctx, []byte(payload)); !errors.Is(err, ErrUnsupportedEvent) {
			t.Errorf("%s: err %v, want ErrUnsupportedEvent", payload, err)
		}
	}
	out, err := e.h.Invoke(ctx, []byte(`{"Records":[]}`))
	if err != nil || string(out) != `{"batchItemFailures":[]}` {
		t.Errorf("empty batch: %s, %v", out, err)
	}
}

func TestDeliveryContextMargin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		left, wantMargin time.Duration
	}{
		{60 * time.Second, maxMargin},
		{5 * time.Second, time.Second},
		{3 * time.Second, 600 * time.Millisecond}, // Lambda's default timeout
		{500 * time.Millisecond, minMargin},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), tc.left)
		dl, _ := ctx.Deadline()
		dctx, dcancel := deliveryContext(ctx)
		ddl, _ := dctx.Deadline()
		if got := dl.Sub(ddl); got < tc.wantMargin-10*time.Millisecond || got > tc.wantMargin+10*time.Millisecond {
			t.Errorf("%s left: margin %s, want %s", tc.left, got, tc.wantMargin)
		}
		dcancel()
		cancel()
	}
}

// BenchmarkSubscriptionEvent1000 measures handler time for a 1,000-event
// subscription event delivered to an in-process devnode over loopback.
func BenchmarkSubscriptionEvent1000(b *testing.B) {
	e := newEnv(b)
	e.h.Dedup = nil // fresh calls every iteration anyway
	e.h.log = slog.New(slog.DiscardHandler)
	g := generator(99)
	var total time.Duration
	calls := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs, cs := g.Events(nil, 1000)
		payload := awslogsPayload(traffic.GzipEnvelope("/aws/apigw/a", "s", evs))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		b.StartTimer()
		start := time.Now()
		if _, err := e.h.Invoke(ctx, payload); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		cancel()
		calls += len(cs)
	}
	b.ReportMetric(float64(calls)/total.Seconds(), "calls/s")
}
