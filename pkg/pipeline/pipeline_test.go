package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errRejected = errors.New("rejected by node: 400")

// recorder is an in-process Forwarder: it records delivered request ids and
// can hold calls (gate) or reject chosen ids.
type recorder struct {
	mu        sync.Mutex
	delivered map[string]int
	reject    map[string]bool
	gate      chan struct{} // when non-nil, Deliver waits for a token or ctx
	entered   chan string   // when non-nil, receives each id as Deliver starts
}

func newRecorder() *recorder {
	return &recorder{delivered: map[string]int{}, reject: map[string]bool{}}
}

// newGatedRecorder is a recorder that holds every call until the test sends a
// token on gate, and reports each call as it enters.
func newGatedRecorder() *recorder {
	r := newRecorder()
	r.gate = make(chan struct{})
	r.entered = make(chan string, 100)
	return r
}

func (r *recorder) Deliver(ctx context.Context, c *accesslog.APICall) error {
	if r.entered != nil {
		r.entered <- c.RequestID
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reject[c.RequestID] {
		return errRejected
	}
	r.delivered[c.RequestID]++
	return nil
}

func newPipeline(t *testing.T, fwd pipeline.Forwarder, cfg pipeline.Config) (*pipeline.Pipeline, *prometheus.Registry) {
	t.Helper()
	parser, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(cfg, fwd, cwlogs.NewDecoder(cwlogs.Options{MaxDecompressedBytes: 1 << 20}), parser, reg,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p, reg
}

func records(t *testing.T, seed int64, n int) ([]pipeline.Record, []traffic.Call) {
	t.Helper()
	g := traffic.New(traffic.Options{Seed: seed, APIs: 2, EndpointsPerAPI: 4})
	var recs []pipeline.Record
	var calls []traffic.Call
	for i, r := range g.Records(n, 5, 20) {
		recs = append(recs, pipeline.Record{ID: fmt.Sprint(i), Data: r.Data})
		calls = append(calls, r.Calls...)
	}
	return recs, calls
}

func TestSubmitDeliversEveryCallBeforeDone(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	p, reg := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 16, Workers: 4})
	recs, calls := records(t, 1, 10)
	s, err := p.Submit(context.Background(), pipeline.Batch{Source: "test", Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !o.Settled() || o.Delivered != len(calls) || o.Calls != len(calls) || o.Records != 10 {
		t.Fatalf("outcome %+v, want %d delivered and settled", o, len(calls))
	}
	for _, c := range calls {
		if rec.delivered[c.RequestID] != 1 {
			t.Fatalf("call %s delivered %d times", c.RequestID, rec.delivered[c.RequestID])
		}
	}
	if got := telemetry.Read(reg).Sum("apigw_connector_pipeline_calls_total", "result", "delivered"); int(got) != len(calls) {
		t.Fatalf("delivered metric %v, want %d", got, len(calls))
	}
}

func TestSettlementWaitsForTheSlowestCall(t *testing.T) {
	t.Parallel()
	rec := newGatedRecorder()
	p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 64, Workers: 8})
	g := traffic.New(traffic.Options{Seed: 2})
	evs, _ := g.Events(nil, 3)
	s, err := p.Submit(context.Background(), pipeline.Batch{Records: []pipeline.Record{{Data: traffic.GzipEnvelope("g", "s", evs)}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-rec.entered
	}
	rec.gate <- struct{}{}
	rec.gate <- struct{}{}
	select {
	case <-s.Done():
		t.Fatal("settlement done while one call is still in flight")
	default:
	}
	rec.gate <- struct{}{}
	if o := s.Outcome(); o.Delivered != 3 || !o.Settled() {
		t.Fatalf("outcome %+v", o)
	}
}

func TestOutcomesByResult(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.Options{Seed: 3})
	evs, calls := g.Events(nil, 4)
	good := traffic.GzipEnvelope("g", "s", evs)
	tests := []struct {
		name    string
		records [][]byte
		reject  []string
		want    pipeline.Outcome
	}{
		{"all delivered", [][]byte{good}, nil, pipeline.Outcome{Records: 1, Events: 4, Calls: 4, Delivered: 4}},
		{"permanent rejection settles", [][]byte{good}, []string{calls[1].RequestID},
			pipeline.Outcome{Records: 1, Events: 4, Calls: 4, Delivered: 3, Rejected: 1}},
		{"corrupt gzip is skipped, others delivered", [][]byte{{0x1f, 0x8b, 8, 0, 1, 2, 3}, good}, nil,
			pipeline.Outcome{Records: 2, DecodeErrors: 1, Events: 4, Calls: 4, Delivered: 4}},
		{"non-JSON line is skipped", [][]byte{traffic.GzipEnvelope("g", "s", append([]traffic.LogEvent{{ID: "1", Message: "not json"}}, evs...))},
			nil, pipeline.Outcome{Records: 1, Events: 5, ParseErrors: 1, Calls: 4, Delivered: 4}},
		{"control message only", [][]byte{traffic.Gzip(traffic.ControlMessage())}, nil, pipeline.Outcome{Records: 1}},
		{"empty record", [][]byte{{}}, nil, pipeline.Outcome{Records: 1, DecodeErrors: 1}},
		{"bad member inside a record skips only itself", [][]byte{append(append(traffic.GzipEnvelope("g", "s", evs[:2]),
			traffic.Gzip([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":`))...), traffic.GzipEnvelope("g", "s", evs[2:])...)}, nil,
			pipeline.Outcome{Records: 1, DecodeErrors: 1, Events: 4, Calls: 4, Delivered: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			for _, id := range tt.reject {
				rec.reject[id] = true
			}
			p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 8, Workers: 2})
			var rs []pipeline.Record
			for _, d := range tt.records {
				rs = append(rs, pipeline.Record{Data: d})
			}
			s, err := p.Submit(context.Background(), pipeline.Batch{Records: rs})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Outcome(); got != tt.want {
				t.Fatalf("outcome\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBackpressureBlocksSubmitWhenBufferIsFull(t *testing.T) {
	t.Parallel()
	rec := newGatedRecorder()
	p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 1, Workers: 1})
	g := traffic.New(traffic.Options{Seed: 4})
	evs, _ := g.Events(nil, 4)
	returned := make(chan *pipeline.Settlement)
	go func() {
		s, _ := p.Submit(context.Background(), pipeline.Batch{Records: []pipeline.Record{{Data: traffic.GzipEnvelope("g", "s", evs)}}})
		returned <- s
	}()
	<-rec.entered // one call held by the worker, one in the buffer: the rest cannot be queued
	select {
	case <-returned:
		t.Fatal("Submit returned although 4 calls cannot fit 1 worker + 1 buffered")
	default:
	}
	go func() {
		for range 4 {
			rec.gate <- struct{}{}
		}
	}()
	s := <-returned
	if o := s.Outcome(); o.Delivered != 4 {
		t.Fatalf("outcome %+v", o)
	}
}

func TestCancelledContextAbandonsAndIsNotSettled(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	rec.gate = make(chan struct{}) // node never answers
	p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 64, Workers: 4})
	recs, calls := records(t, 5, 3)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := p.Submit(ctx, pipeline.Batch{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
		t.Fatal("done before any call was delivered")
	default:
	}
	cancel()
	o := s.Outcome()
	if o.Settled() || o.Abandoned != len(calls) || o.Delivered != 0 {
		t.Fatalf("outcome %+v, want all %d abandoned", o, len(calls))
	}
}

type seen struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (d *seen) Delivered(id string) bool { d.mu.Lock(); defer d.mu.Unlock(); return d.ids[id] }
func (d *seen) MarkDelivered(id string)  { d.mu.Lock(); d.ids[id] = true; d.mu.Unlock() }

func TestDedupSkipsDeliveredCallsOnRetry(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 64, Workers: 4})
	recs, calls := records(t, 6, 4)
	d := &seen{ids: map[string]bool{}}
	first, _ := p.Submit(context.Background(), pipeline.Batch{Records: recs, Dedup: d})
	if o := first.Outcome(); o.Delivered != len(calls) {
		t.Fatalf("first %+v", o)
	}
	again, _ := p.Submit(context.Background(), pipeline.Batch{Records: recs, Dedup: d})
	if o := again.Outcome(); o.Duplicates != len(calls) || o.Delivered != 0 || !o.Settled() {
		t.Fatalf("retry %+v", o)
	}
	for id, n := range rec.delivered {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
}

func TestLinesFormat(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 64, Workers: 4})
	g := traffic.New(traffic.Options{Seed: 7})
	var buf []byte
	for range 10 {
		buf = append(buf, g.Line()...)
		buf = append(buf, "\n\n"...)
	}
	s, _ := p.Submit(context.Background(), pipeline.Batch{Format: pipeline.FormatLines, Records: []pipeline.Record{{Data: buf}}})
	if o := s.Outcome(); o.Delivered != 10 || o.Events != 10 {
		t.Fatalf("outcome %+v", o)
	}
}

func TestShutdownDeadlineAbandonsStuckCalls(t *testing.T) {
	t.Parallel()
	rec := newGatedRecorder()
	p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 64, Workers: 2})
	recs, calls := records(t, 8, 2)
	s, _ := p.Submit(context.Background(), pipeline.Batch{Records: recs})
	<-rec.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown err %v, want deadline exceeded", err)
	}
	if o := s.Outcome(); o.Abandoned != len(calls) || o.Settled() {
		t.Fatalf("outcome %+v", o)
	}
	if _, err := p.Submit(context.Background(), pipeline.Batch{Records: recs}); !errors.Is(err, pipeline.ErrClosed) {
		t.Fatalf("submit after shutdown: %v", err)
	}
}

// panicky is a Forwarder whose Filter (called while a record is decoded)
// panics on one call, standing in for a decoder or parser bug on odd input.
type panicky struct {
	*recorder
	bad string
}

func (p panicky) Filter(c *accesslog.APICall) bool {
	if c.RequestID == p.bad {
		panic("boom")
	}
	return true
}

func TestAPanicWhileDecodingSkipsTheRecordNotTheWorker(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.Options{Seed: 9})
	badEvs, badCalls := g.Events(nil, 3)
	goodEvs, goodCalls := g.Events(nil, 4)
	rec := newRecorder()
	p, reg := newPipeline(t, panicky{recorder: rec, bad: badCalls[1].RequestID}, pipeline.Config{MaxBufferedCalls: 16, Workers: 2})
	s, err := p.Submit(context.Background(), pipeline.Batch{Records: []pipeline.Record{
		{ID: "bad", Data: traffic.GzipEnvelope("g", "s", badEvs)},
		{ID: "good", Data: traffic.GzipEnvelope("g", "s", goodEvs)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	o := s.Outcome()
	if o.DecodeErrors != 1 || o.Delivered != 1+len(goodCalls) || !o.Settled() {
		t.Fatalf("outcome %+v: want the bad record cut at the panic (1 call before it delivered), the good one whole", o)
	}
	if got := telemetry.Read(reg).Sum("apigw_connector_decode_errors_total", "reason", "panic"); got != 1 {
		t.Fatalf(`decode_errors_total{reason="panic"} = %v, want 1`, got)
	}
}

// A full buffer takes new calls again only once the workers have taken a
// quarter of it: not one call per freed slot, which woke the submitting
// goroutine for every call of a backlog.
func TestFullBufferRefillsFromAQuarterDown(t *testing.T) {
	t.Parallel()
	rec := newGatedRecorder()
	p, reg := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 8, Workers: 1})
	evs, _ := traffic.New(traffic.Options{Seed: 5}).Events(nil, 40)
	batch := func(evs []traffic.LogEvent) pipeline.Batch {
		return pipeline.Batch{Records: []pipeline.Record{{Data: traffic.GzipEnvelope("g", "s", evs)}}}
	}
	// The worker holds a call before the rest is submitted: else the
	// submitter may fill the buffer before the worker takes the first call,
	// and then (rightly) waits with 7 queued.
	first, err := p.Submit(context.Background(), batch(evs[:1]))
	if err != nil {
		t.Fatal(err)
	}
	<-rec.entered // the worker holds one call
	returned := make(chan *pipeline.Settlement, 1)
	go func() {
		s, _ := p.Submit(context.Background(), batch(evs[1:]))
		returned <- s
	}()
	buffered := func() float64 { return telemetry.Read(reg).Sum("apigw_connector_pipeline_calls_buffered", "", "") }
	waitFor := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for buffered() != want {
			if time.Now().After(deadline) {
				t.Fatalf("calls buffered: %v, want %v", buffered(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The gauge counts the call the submitter holds, waiting for a slot, too.
	waitFor(8 + 1) // the buffer is full
	rec.gate <- struct{}{}
	<-rec.entered // the worker took the next one: 7 left, above the low-water mark of 6
	time.Sleep(50 * time.Millisecond)
	if got := buffered(); got != 7+1 {
		t.Fatalf("calls buffered after one slot freed: %v, want 7+1 (no refill above the low-water mark)", got)
	}
	rec.gate <- struct{}{}
	<-rec.entered // 6 left: the submitter may fill the buffer again
	waitFor(8 + 1)
	go func() {
		for range 38 {
			rec.gate <- struct{}{}
		}
	}()
	if o := (<-returned).Outcome(); o.Delivered != 39 {
		t.Fatalf("outcome %+v, want 39 delivered", o)
	}
	if o, err := first.Wait(context.Background()); err != nil || o.Delivered != 1 {
		t.Fatalf("outcome of the first batch %+v (%v), want 1 delivered", o, err)
	}
}

// However small the buffer and however many sources submit at once, every
// call is delivered and every Submit returns: no submitter waits for a
// wake-up that no worker sends.
func TestEveryCallQueuedWithTinyBuffersAndManySubmitters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ buffer, workers, submitters int }{
		{1, 1, 4}, {2, 1, 3}, {3, 2, 4}, {5, 3, 2}, {8, 64, 4},
	} {
		t.Run(fmt.Sprintf("buffer=%d/workers=%d/submitters=%d", tc.buffer, tc.workers, tc.submitters), func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: tc.buffer, Workers: tc.workers})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var want atomic.Int64
			for i := range tc.submitters {
				recs, calls := records(t, int64(100*tc.buffer+i), 8)
				want.Add(int64(len(calls)))
				wg.Go(func() {
					s, err := p.Submit(ctx, pipeline.Batch{Records: recs})
					if err != nil {
						t.Error(err)
						return
					}
					if o, err := s.Wait(ctx); err != nil || o.Delivered != len(calls) {
						t.Errorf("submitter %d: outcome %+v (%v), want %d delivered", i, o, err, len(calls))
					}
				})
			}
			wg.Wait()
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if got := int64(len(rec.delivered)); got != want.Load() {
				t.Errorf("%d distinct calls delivered, want %d", got, want.Load())
			}
		})
	}
}
