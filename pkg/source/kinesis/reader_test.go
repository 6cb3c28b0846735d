package kinesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// fakeKinesis is one shard in memory. Iterators are "i:<index of the next record>".
type fakeKinesis struct {
	mu      sync.Mutex
	records []types.Record
	closed  bool // the shard ends after its last record
	// iterErr and recordsErr, when set, answer a call instead of the shard (nil: answer).
	iterErr    func(in *kinesis.GetShardIteratorInput) error
	recordsErr func(call int) error
	hangFirst  bool // the first GetRecords never answers (until its context ends)
	iterCalls  []kinesis.GetShardIteratorInput
	getCalls   int
}

func (f *fakeKinesis) add(data ...[]byte) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var seqs []string
	for _, d := range data {
		seq := strconv.Itoa(1000 + len(f.records))
		f.records = append(f.records, types.Record{SequenceNumber: aws.String(seq), Data: d, PartitionKey: aws.String("pk")})
		seqs = append(seqs, seq)
	}
	return seqs
}

func (f *fakeKinesis) indexOf(seq string) int {
	for i, r := range f.records {
		if aws.ToString(r.SequenceNumber) == seq {
			return i
		}
	}
	return -1
}

func (f *fakeKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("shardId-000000000000")}}}, nil
}

func (f *fakeKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.iterCalls = append(f.iterCalls, *in)
	if f.iterErr != nil {
		if err := f.iterErr(in); err != nil {
			return nil, err
		}
	}
	var i int
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeTrimHorizon:
		i = 0
	case types.ShardIteratorTypeLatest:
		i = len(f.records)
	case types.ShardIteratorTypeAtTimestamp:
		i = 0
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		i = f.indexOf(aws.ToString(in.StartingSequenceNumber))
		if i < 0 {
			return nil, &types.InvalidArgumentException{Message: aws.String("StartingSequenceNumber " + aws.ToString(in.StartingSequenceNumber) + " is invalid")}
		}
		if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber {
			i++
		}
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("i:" + strconv.Itoa(i))}, nil
}

func (f *fakeKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	f.getCalls++
	call := f.getCalls
	hang := f.hangFirst && call == 1
	errFn := f.recordsErr
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, fmt.Errorf("operation GetRecords: %w", ctx.Err())
	}
	if errFn != nil {
		if err := errFn(call); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, _ := strconv.Atoi(strings.TrimPrefix(aws.ToString(in.ShardIterator), "i:"))
	j := min(len(f.records), i+int(aws.ToInt32(in.Limit)))
	out := &kinesis.GetRecordsOutput{Records: slices.Clone(f.records[i:j]), MillisBehindLatest: aws.Int64(0)}
	if !f.closed || j < len(f.records) {
		out.NextShardIterator = aws.String("i:" + strconv.Itoa(j))
	}
	return out, nil
}

// fakeHandle is a lease handle that records its checkpoint writes.
type fakeHandle struct {
	failWrites int // the first writes fail with this many errors
	attempts   int
	seq        string
	sub        int64
	lost       chan struct{}
	mu         sync.Mutex
	saved      []position
	ended      bool
	children   []string
}

func newFakeHandle(seq string, sub int64) *fakeHandle {
	return &fakeHandle{seq: seq, sub: sub, lost: make(chan struct{})}
}

func (h *fakeHandle) ShardID() string             { return "shardId-000000000000" }
func (h *fakeHandle) Checkpoint() (string, int64) { return h.seq, h.sub }
func (h *fakeHandle) Lost() <-chan struct{}       { return h.lost }
func (h *fakeHandle) checkpoints() []position {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.saved)
}
func (h *fakeHandle) isEnded() (bool, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ended, h.children
}
func (h *fakeHandle) last() (position, bool) { c := h.checkpoints(); return lastOf(c) }
func lastOf(c []position) (position, bool) {
	if len(c) == 0 {
		return position{}, false
	}
	return c[len(c)-1], true
}
func (h *fakeHandle) SaveCheckpointAt(_ context.Context, seq string, sub int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	if h.attempts <= h.failWrites {
		return errors.New("write checkpoint: DynamoDB says no")
	}
	h.saved = append(h.saved, position{seq: seq, sub: sub})
	return nil
}

func (h *fakeHandle) ShardEnded(_ context.Context, children []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended, h.children = true, children
	return nil
}

// fakePipeline takes records and settles them at once, or when told (hold).
type fakePipeline struct {
	mu   sync.Mutex
	ids  []string
	data []string
	hold bool
	held []*testSettlement
}

func (p *fakePipeline) submit(_ context.Context, b pipeline.Batch) (settlement, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := newTestSettlement()
	for _, r := range b.Records {
		p.ids = append(p.ids, r.ID)
		p.data = append(p.data, string(r.Data))
	}
	if p.hold {
		p.held = append(p.held, s)
	} else {
		s.settle(pipeline.Outcome{Records: 1, Delivered: 1})
	}
	return s, nil
}

func (p *fakePipeline) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.data)
}

func (p *fakePipeline) settleHeld() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.held {
		s.settle(pipeline.Outcome{Records: 1, Delivered: 1})
	}
	p.held = nil
}

type fakeRun struct {
	api  *fakeKinesis
	h    *fakeHandle
	pipe *fakePipeline
	deps *readerDeps
	reg  *prometheus.Registry
}

// newFakeRun wires a shard reader as New does (request timeouts included) to fakes.
func newFakeRun(t *testing.T, api *fakeKinesis, h *fakeHandle, mod func(*Config)) *fakeRun {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Stream = "fake"
	cfg.PollInterval = 10 * time.Millisecond // below the real minimum: fakes have no limit
	cfg.CheckpointInterval = time.Hour       // only the first and the final checkpoint
	cfg.ShutdownGrace = 2 * time.Second
	cfg.RequestTimeout = 200 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	pipe := &fakePipeline{}
	d := newReaderDeps(cfg, api, pipe.submit, m, testLogger(t))
	d.hardStop = make(chan struct{})
	return &fakeRun{api: api, h: h, pipe: pipe, deps: d, reg: reg}
}

// start runs the shard reader; the returned func cancels it and waits for it to return.
func (f *fakeRun) start(t *testing.T) (done <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		newShardRun(f.deps, f.h).run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("shard reader did not return within 10s of its context ending")
		}
	}
	t.Cleanup(stop)
	return ch, stop
}

func waitDone(t *testing.T, done <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("shard reader still running after %s: %s", d, what)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

var notFound = &types.ResourceNotFoundException{Message: aws.String("Shard shardId-000000000000 in stream fake under account 123456789012 does not exist")}

// A shard Kinesis no longer knows ends (SHARD_END, no children) once what was read settled,
// as in the Java KCL, instead of being retried forever while its children wait.
func TestReaderShardGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		iterErr    bool // GetShardIterator answers ResourceNotFound
		recordsErr int  // GetRecords call from which on ResourceNotFound is answered (0: never)
		want       []string
	}{
		{name: "GetShardIterator", iterErr: true},
		{name: "GetRecords after records", recordsErr: 2, want: []string{"a", "b"}},
		{name: "GetRecords at once", recordsErr: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeKinesis{}
			api.add([]byte("a"), []byte("b"))
			if tt.iterErr {
				api.iterErr = func(*kinesis.GetShardIteratorInput) error { return notFound }
			}
			if tt.recordsErr > 0 {
				api.recordsErr = func(call int) error {
					if call >= tt.recordsErr {
						return notFound
					}
					return nil
				}
			}
			f := newFakeRun(t, api, newFakeHandle(PositionTrimHorizon, 0), nil)
			done, _ := f.start(t)
			waitDone(t, done, 5*time.Second, "ResourceNotFoundException retried instead of ending the shard")
			ended, children := f.h.isEnded()
			if !ended || len(children) != 0 {
				t.Fatalf("ShardEnded called: %v with children %v, want SHARD_END with no children", ended, children)
			}
			if got := f.pipe.got(); !slices.Equal(got, tt.want) {
				t.Errorf("delivered %q, want %q", got, tt.want)
			}
			if n := counterValue(t, f.reg, "apigw_connector_kinesis_shards_gone_total"); n != 1 {
				t.Errorf("shards_gone_total = %v, want 1", n)
			}
		})
	}
}

// A checkpoint whose iterator can never be had (sequence number past the retention period)
// restarts the shard at TRIM_HORIZON, with a warning and a count, instead of holding it forever.
func TestReaderCheckpointPastRetention(t *testing.T) {
	t.Parallel()
	api := &fakeKinesis{}
	api.add([]byte("a"), []byte("b"))
	// The fake answers InvalidArgumentException for a sequence number it does not hold.
	f := newFakeRun(t, api, newFakeHandle("999", 0), nil)
	f.start(t)
	eventually(t, 5*time.Second, "records after the fallback delivered", func() bool { return len(f.pipe.got()) == 2 })
	if n := counterValue(t, f.reg, "apigw_connector_kinesis_checkpoint_fallbacks_total"); n != 1 {
		t.Errorf("checkpoint_fallbacks_total = %v, want 1", n)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if n := len(api.iterCalls); n != 2 || api.iterCalls[1].ShardIteratorType != types.ShardIteratorTypeTrimHorizon {
		t.Errorf("iterator calls %d (second %v), want 2, the second TRIM_HORIZON", n, api.iterCalls[min(1, n-1)].ShardIteratorType)
	}
}

// A GetRecords call that never answers costs one request timeout, not the shard.
func TestReaderRequestTimeout(t *testing.T) {
	t.Parallel()
	api := &fakeKinesis{hangFirst: true}
	api.add([]byte("a"))
	f := newFakeRun(t, api, newFakeHandle(PositionTrimHorizon, 0), nil)
	f.start(t)
	took := eventually(t, 5*time.Second, "record delivered after a hung GetRecords", func() bool { return len(f.pipe.got()) == 1 })
	t.Logf("delivered %s after a hung GetRecords (request timeout %s)", took, f.deps.cfg.RequestTimeout)
	if n := testutil.ToFloat64(f.deps.m.errors.WithLabelValues("get_records")); n != 1 {
		t.Errorf("get_records errors = %v, want 1 (the timed-out call)", n)
	}
}

func TestNewWiresRequestTimeout(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Stream = "s"
	cfg.WorkerID = "w"
	cfg.RequestTimeout = 1234 * time.Millisecond
	s, err := New(cfg, aws.Config{Region: "us-east-1"}, &pipeline.Pipeline{}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, api := range map[string]KinesisAPI{"readers": s.deps.api, "lister": s.deps.lister.api} {
		if ta, ok := api.(timeoutAPI); !ok || ta.timeout != cfg.RequestTimeout {
			t.Errorf("%s call Kinesis through %T, want timeoutAPI with %s", name, api, cfg.RequestTimeout)
		}
	}
}

// KPL aggregates are handed on as their user records; a resume from a checkpoint inside an
// aggregate (S, k) reads S again and skips its user records up to k, as the Java KCL; a
// resume from (S, 0) of a plain record starts after it.
func TestReaderAggregatedRecords(t *testing.T) {
	t.Parallel()
	records := [][]byte{
		[]byte("plain-1"),
		kplAggregate([]byte("agg-0"), []byte("agg-1"), []byte("agg-2")),
		kplFrame(kplMessage([]string{"pk"}, nil)), // an aggregate with no user record
		[]byte("plain-2"),
	}
	seq := func(i int) string { return strconv.Itoa(1000 + i) }
	tests := []struct {
		name     string
		seq      string
		sub      int64
		closed   bool
		upTo     int // records in the shard (0 = all)
		want     []string
		wantLast position
	}{
		{name: "from TRIM_HORIZON", seq: PositionTrimHorizon,
			want: []string{"plain-1", "agg-0", "agg-1", "agg-2", "plain-2"}, wantLast: position{seq: seq(3)}},
		{name: "Java checkpoint inside the aggregate", seq: seq(1), sub: 1,
			want: []string{"agg-2", "plain-2"}, wantLast: position{seq: seq(3)}},
		{name: "checkpoint at the aggregate's first user record", seq: seq(1), sub: 0,
			want: []string{"agg-1", "agg-2", "plain-2"}, wantLast: position{seq: seq(3)}},
		{name: "checkpoint after the whole aggregate", seq: seq(1), sub: 2,
			want: []string{"plain-2"}, wantLast: position{seq: seq(3)}},
		{name: "plain record checkpoint", seq: seq(0), sub: 0,
			want: []string{"agg-0", "agg-1", "agg-2", "plain-2"}, wantLast: position{seq: seq(3)}},
		{name: "aggregate last in the shard: checkpoint names its last user record", seq: PositionTrimHorizon, upTo: 2,
			want: []string{"plain-1", "agg-0", "agg-1", "agg-2"}, wantLast: position{seq: seq(1), sub: 2}},
		{name: "empty aggregate last: the checkpoint moves past it", seq: seq(1), sub: 2, upTo: 3,
			want: nil, wantLast: position{seq: seq(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeKinesis{closed: true}
			n := len(records)
			if tt.upTo > 0 {
				n = tt.upTo
			}
			api.add(records[:n]...)
			f := newFakeRun(t, api, newFakeHandle(tt.seq, tt.sub), nil)
			done, _ := f.start(t)
			waitDone(t, done, 5*time.Second, "closed shard not finished")
			if got := f.pipe.got(); !slices.Equal(got, tt.want) {
				t.Errorf("delivered %q, want %q", got, tt.want)
			}
			cps := f.h.checkpoints()
			if last, ok := lastOf(cps); !ok || last != tt.wantLast {
				t.Errorf("last checkpoint %+v (all %+v), want %+v", last, cps, tt.wantLast)
			}
			if ended, _ := f.h.isEnded(); !ended {
				t.Error("closed shard not ended")
			}
			if isSequenceNumber(tt.seq) {
				api.mu.Lock()
				it := api.iterCalls[0]
				api.mu.Unlock()
				if it.ShardIteratorType != types.ShardIteratorTypeAtSequenceNumber || aws.ToString(it.StartingSequenceNumber) != tt.seq {
					t.Errorf("resumed with %s %s, want AT_SEQUENCE_NUMBER %s", it.ShardIteratorType, aws.ToString(it.StartingSequenceNumber), tt.seq)
				}
			}
		})
	}
}

// An AT_TIMESTAMP checkpoint needs kinesis.initial_timestamp: with it the shard reads from
// there; without it the shard is not read at all (not from some other place).
func TestReaderAtTimestampCheckpoint(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	t.Run("timestamp set", func(t *testing.T) {
		t.Parallel()
		api := &fakeKinesis{}
		api.add([]byte("a"))
		f := newFakeRun(t, api, newFakeHandle(PositionAtTimestamp, 0), func(c *Config) { c.InitialTimestamp = ts })
		f.start(t)
		eventually(t, 5*time.Second, "record delivered", func() bool { return len(f.pipe.got()) == 1 })
		api.mu.Lock()
		defer api.mu.Unlock()
		if it := api.iterCalls[0]; it.ShardIteratorType != types.ShardIteratorTypeAtTimestamp || !aws.ToTime(it.Timestamp).Equal(ts) {
			t.Errorf("iterator %s at %v, want AT_TIMESTAMP at %v", it.ShardIteratorType, aws.ToTime(it.Timestamp), ts)
		}
	})
	t.Run("no timestamp", func(t *testing.T) {
		t.Parallel()
		api := &fakeKinesis{}
		api.add([]byte("a"))
		f := newFakeRun(t, api, newFakeHandle(PositionAtTimestamp, 0), nil)
		f.deps.failHold = 300 * time.Millisecond
		done, _ := f.start(t)
		waitDone(t, done, 5*time.Second, "shard with an unusable AT_TIMESTAMP checkpoint not released")
		api.mu.Lock()
		calls := len(api.iterCalls)
		api.mu.Unlock()
		if calls != 0 || len(f.pipe.got()) != 0 {
			t.Errorf("%d iterator calls, %d records read; want none", calls, len(f.pipe.got()))
		}
		if n := counterValue(t, f.reg, "apigw_connector_kinesis_shard_failures_total"); n != 1 {
			t.Errorf("shard_failures_total = %v, want 1", n)
		}
		if cps := f.h.checkpoints(); len(cps) != 0 {
			t.Errorf("checkpoints written %v, want none", cps)
		}
	})
}

// The first checkpoint of a lease comes as soon as its first records settled, not a checkpoint
// interval later; and a stop settles what is in flight and checkpoints it.
func TestReaderCheckpointsSoonAndOnTheWayOut(t *testing.T) {
	t.Parallel()
	api := &fakeKinesis{}
	seqs := api.add([]byte("a"), []byte("b"))
	f := newFakeRun(t, api, newFakeHandle(PositionTrimHorizon, 0), nil) // checkpoint interval 1h
	_, stop := f.start(t)
	took := eventually(t, 3*time.Second, "first checkpoint", func() bool {
		last, ok := f.h.last()
		return ok && last.seq == seqs[1]
	})
	t.Logf("first checkpoint %s after the take (interval %s)", took, f.deps.cfg.CheckpointInterval)

	// Records in flight at the stop settle within the grace period and are checkpointed.
	f.pipe.mu.Lock()
	f.pipe.hold = true
	f.pipe.mu.Unlock()
	more := api.add([]byte("c"))
	eventually(t, 3*time.Second, "record c handed over", func() bool { return len(f.pipe.got()) == 3 })
	go func() {
		time.Sleep(200 * time.Millisecond) // after the stop began
		f.pipe.settleHeld()
	}()
	stop()
	if last, _ := f.h.last(); last.seq != more[0] {
		t.Fatalf("final checkpoint %+v, want %s (settled during the grace period)", last, more[0])
	}
	if ended, _ := f.h.isEnded(); ended {
		t.Error("an open shard was ended")
	}
}

// A first checkpoint write that fails is retried at the checkpoint interval, not at the pace
// of the first-checkpoint poll.
func TestReaderFailedFirstCheckpointPaced(t *testing.T) {
	t.Parallel()
	api := &fakeKinesis{}
	seqs := api.add([]byte("a"))
	h := newFakeHandle(PositionTrimHorizon, 0)
	h.failWrites = 1
	f := newFakeRun(t, api, h, func(c *Config) { c.CheckpointInterval = 700 * time.Millisecond })
	f.start(t)
	eventually(t, 3*time.Second, "first write attempt", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.attempts == 1
	})
	time.Sleep(400 * time.Millisecond)
	h.mu.Lock()
	n := h.attempts
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d write attempts within 400ms of a failed one, want 1 (retry at the 700ms interval)", n)
	}
	eventually(t, 3*time.Second, "checkpoint written on the retry", func() bool {
		last, ok := h.last()
		return ok && last.seq == seqs[0]
	})
}
