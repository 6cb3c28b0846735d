package kinesis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/lease"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// Timings the integration tests run with: short, so every test ends in seconds.
const (
	testFailover   = 1500 * time.Millisecond
	testPoll       = 200 * time.Millisecond
	testCheckpoint = 300 * time.Millisecond
	testGrace      = 2 * time.Second
	waitLong       = 30 * time.Second // upper bound for anything a test waits for
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("KINESIS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// recorder is the in-process node: it records which worker delivered which request id, in
// delivery order, and can simulate an outage (Deliver retries, as the node client does, until
// the node is back or the delivery context ends).
type recorder struct {
	mu        sync.Mutex
	byID      map[string][]string // request id -> workers that delivered it
	firstAt   map[string]int64    // request id -> first delivery index
	lastAt    map[string]int64    // request id -> last delivery index
	n         int64
	down      atomic.Bool
	delivered atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{byID: map[string][]string{}, firstAt: map[string]int64{}, lastAt: map[string]int64{}}
}

type recordingForwarder struct {
	r      *recorder
	worker string
}

func (f recordingForwarder) Deliver(ctx context.Context, call *accesslog.APICall) error {
	for f.r.down.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.r.mu.Lock()
	f.r.n++
	if _, ok := f.r.firstAt[call.RequestID]; !ok {
		f.r.firstAt[call.RequestID] = f.r.n
	}
	f.r.lastAt[call.RequestID] = f.r.n
	f.r.byID[call.RequestID] = append(f.r.byID[call.RequestID], f.worker)
	f.r.mu.Unlock()
	f.r.delivered.Add(1)
	return nil
}

// missing returns the ids not delivered yet; dups the ids delivered more than once.
func (r *recorder) check(ids []string) (missing, dups []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		switch n := len(r.byID[id]); {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			dups = append(dups, id)
		}
	}
	return missing, dups
}

func (r *recorder) workersOf(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.byID[id]...)
}

// sent is what the producer wrote: each call's record, by request id.
type sent struct {
	mu    sync.Mutex
	ids   []string
	where map[string]placed
	// lastSeq per shard
	last map[string]string
}

type placed struct {
	shard, seq string
}

func newSent() *sent { return &sent{where: map[string]placed{}, last: map[string]string{}} }

func (s *sent) allIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// env is one test's stream and lease table on shared emulators.
type env struct {
	t        *testing.T
	awsCfg   aws.Config
	kc       *kinesis.Client
	db       *dynamodb.Client
	stream   string
	table    string
	rec      *recorder
	sent     *sent
	gen      *traffic.Generator
	genMu    sync.Mutex
	partKeys atomic.Int64
	// onStart and onEnd, when set before a worker starts, see every shard reader start and
	// return.
	onStart func(worker, shard, checkpoint string)
	onEnd   func(worker, shard string)
	// logTo, when set before a worker starts, receives its log (text, info and above).
	logTo io.Writer
	// workerLog keeps every worker's log (info and above), printed when the test fails: a
	// failure seen once in CI then says what the workers did.
	workerLog testkit.SyncBuffer
}

// failLogTail is how much of the workers' log a failed test prints.
const failLogTail = 64 << 10

var nameSeq atomic.Int64

func newEnv(t *testing.T, kinesisEP, dynamoEP string, shards int32) *env {
	t.Helper()
	n := nameSeq.Add(1)
	e := &env{
		t:      t,
		awsCfg: testenv.AWSConfig(t, kinesisEP, dynamoEP),
		stream: fmt.Sprintf("stream-%d-%d", os.Getpid(), n),
		table:  fmt.Sprintf("app-%d-%d", os.Getpid(), n),
		rec:    newRecorder(),
		sent:   newSent(),
		gen:    traffic.New(traffic.Options{Seed: n}),
	}
	e.kc = kinesis.NewFromConfig(e.awsCfg)
	e.db = dynamodb.NewFromConfig(e.awsCfg)
	// Registered before any worker's stop, so it runs after them and shows their shutdown.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out := e.workerLog.String()
		if len(out) > failLogTail {
			out = "[...]\n" + out[len(out)-failLogTail:]
		}
		t.Logf("the workers' log (info and above):\n%s", out)
	})
	testenv.CreateStream(t, e.kc, e.stream, shards)
	return e
}

func (e *env) config(worker string) Config {
	c := DefaultConfig()
	c.Stream = e.stream
	c.ApplicationName = e.table
	c.WorkerID = worker
	c.FailoverTime = testFailover
	// A stable worker notices a crash on its next scan: keep that scan
	// close, as an operator who wants fast failover would.
	c.StableScanInterval = testFailover
	c.PollInterval = testPoll
	c.CheckpointInterval = testCheckpoint
	c.ShutdownGrace = testGrace
	c.ShardSyncInterval = time.Second
	return c
}

// worker is one Source with its own pipeline and registry, as one ECS task would run.
type worker struct {
	name   string
	src    *Source
	pipe   *pipeline.Pipeline
	reg    *prometheus.Registry
	cancel context.CancelFunc
	once   sync.Once
}

func (e *env) startWorker(name string, mod func(*Config)) *worker {
	e.t.Helper()
	return e.startWorkerVia(name, e.awsCfg, mod)
}

// startWorkerVia starts a worker that reaches AWS through awsCfg (e.g. a fault proxy's
// endpoints), while the test's own clients go direct.
func (e *env) startWorkerVia(name string, awsCfg aws.Config, mod func(*Config)) *worker {
	t := e.t
	t.Helper()
	cfg := e.config(name)
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	var log *slog.Logger
	switch {
	case e.logTo != nil:
		log = slog.New(slog.NewTextHandler(io.MultiWriter(e.logTo, &e.workerLog), nil))
	case os.Getenv("KINESIS_TEST_LOG") != "":
		log = testLogger(t) // everything, as it happens
	default:
		log = slog.New(slog.NewTextHandler(&e.workerLog, nil))
	}
	log = log.With("worker", name)
	pcfg := pipeline.DefaultConfig()
	pcfg.Workers = 16
	pipe, err := pipeline.New(pcfg, recordingForwarder{r: e.rec, worker: name}, cwlogs.NewDecoder(cwlogs.DefaultOptions()),
		newParser(t), reg, log)
	if err != nil {
		t.Fatalf("new pipeline: %v", err)
	}
	if err := pipe.Start(context.Background()); err != nil {
		t.Fatalf("start pipeline: %v", err)
	}
	src, err := New(cfg, awsCfg, pipe, reg, log)
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	if hook := e.onStart; hook != nil {
		src.deps.onStart = func(shard, cp string) { hook(name, shard, cp) }
	}
	if hook := e.onEnd; hook != nil {
		src.deps.onEnd = func(shard string) { hook(name, shard) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start source: %v", err)
	}
	w := &worker{name: name, src: src, pipe: pipe, reg: reg, cancel: cancel}
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop shuts the worker down gracefully (a no-op after crash or an earlier stop).
func (w *worker) stop(t testing.TB) {
	w.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := w.src.Shutdown(ctx); err != nil {
			t.Errorf("shut down worker %s: %v", w.name, err)
		}
		w.cancel()
		if err := w.pipe.Shutdown(ctx); err != nil {
			t.Errorf("shut down pipeline of %s: %v", w.name, err)
		}
	})
}

// crash stops the worker without a graceful shutdown: its context is cancelled, nothing more.
func (w *worker) crash(t testing.TB) {
	w.once.Do(func() {
		w.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_ = w.src.Shutdown(ctx) // reap goroutines of the cancelled worker; its leases are expired by now or soon
		_ = w.pipe.Shutdown(ctx)
	})
}

func (w *worker) counter(name, shard string) float64 {
	mfs, err := w.reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := shard == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "shard" && l.GetValue() == shard {
					match = true
				}
			}
			if !match {
				continue
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

// produce writes n records of minEv..maxEv events (real CloudWatch Logs gzip documents with
// unique request ids) with random partition keys, in PutRecords batches.
func (e *env) produce(n, minEv, maxEv int) {
	t := e.t
	t.Helper()
	e.genMu.Lock()
	recs := e.gen.Records(n, minEv, maxEv)
	e.genMu.Unlock()
	e.putRecords(recs)
}

func (e *env) putRecords(recs []traffic.Record) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for len(recs) > 0 {
		chunk := recs[:min(len(recs), 200)]
		recs = recs[len(chunk):]
		entries := make([]kinesisPutEntry, len(chunk))
		for i, r := range chunk {
			entries[i] = kinesisPutEntry{data: r.Data, key: e.partitionKey()}
		}
		res := e.put(ctx, entries)
		e.sent.mu.Lock()
		for i, r := range chunk {
			for _, c := range r.Calls {
				e.sent.ids = append(e.sent.ids, c.RequestID)
				e.sent.where[c.RequestID] = res[i]
			}
			e.sent.noteLastLocked(res[i])
		}
		e.sent.mu.Unlock()
	}
}

type kinesisPutEntry struct {
	data []byte
	key  string
}

// partitionKey returns a new partition key; successive keys spread over the hash-key range.
func (e *env) partitionKey() string { return strconv.FormatInt(e.partKeys.Add(1)*7919, 36) }

// noteLastLocked raises the last sequence number sent to p's shard to p's.
func (s *sent) noteLastLocked(p placed) {
	if seqLess(s.last[p.shard], p.seq) {
		s.last[p.shard] = p.seq
	}
}

// put writes entries with PutRecords, retrying the failed ones, and returns where each landed.
func (e *env) put(ctx context.Context, entries []kinesisPutEntry) []placed {
	t := e.t
	out := make([]placed, len(entries))
	todo := make([]int, len(entries))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 20 {
			t.Fatalf("put records: %d still failing after retries", len(todo))
		}
		in := &kinesis.PutRecordsInput{StreamName: aws.String(e.stream)}
		for _, i := range todo {
			in.Records = append(in.Records, ktypes.PutRecordsRequestEntry{Data: entries[i].data, PartitionKey: aws.String(entries[i].key)})
		}
		res, err := e.kc.PutRecords(ctx, in)
		if err != nil {
			t.Fatalf("put records: %v", err)
		}
		var again []int
		for j, r := range res.Records {
			i := todo[j]
			if r.ErrorCode != nil {
				again = append(again, i)
				continue
			}
			out[i] = placed{shard: aws.ToString(r.ShardId), seq: aws.ToString(r.SequenceNumber)}
		}
		todo = again
		if len(todo) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

// putRaw writes one record with arbitrary data and returns where it landed.
func (e *env) putRaw(data []byte) placed {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	p := e.put(ctx, []kinesisPutEntry{{data: data, key: e.partitionKey()}})[0]
	e.sent.mu.Lock()
	e.sent.noteLastLocked(p)
	e.sent.mu.Unlock()
	return p
}

// seqLess compares Kinesis sequence numbers (decimal, up to 128 bits); "" is the lowest.
func seqLess(a, b string) bool {
	if a == "" {
		return b != ""
	}
	if b == "" {
		return false
	}
	x, ok1 := new(big.Int).SetString(a, 10)
	y, ok2 := new(big.Int).SetString(b, 10)
	if !ok1 || !ok2 {
		return a < b
	}
	return x.Cmp(y) < 0
}

// leaseRow is what the tests read back from the lease table.
type leaseRow struct {
	key, owner, checkpoint string
	counter, sub           int64
	parents, children      []string
}

func (e *env) leases() map[string]leaseRow {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]leaseRow{}
	var start map[string]ddbtypes.AttributeValue
	for {
		res, err := e.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(e.table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return out // table not created yet
		}
		for _, it := range res.Items {
			r := leaseRow{key: str(it["leaseKey"]), owner: str(it["leaseOwner"]), checkpoint: str(it["checkpoint"])}
			if n, ok := it["leaseCounter"].(*ddbtypes.AttributeValueMemberN); ok {
				r.counter, _ = strconv.ParseInt(n.Value, 10, 64)
			}
			if n, ok := it["checkpointSubSequenceNumber"].(*ddbtypes.AttributeValueMemberN); ok {
				r.sub, _ = strconv.ParseInt(n.Value, 10, 64)
			}
			if ss, ok := it["parentShardId"].(*ddbtypes.AttributeValueMemberSS); ok {
				r.parents = ss.Value
			}
			if ss, ok := it["childShardIds"].(*ddbtypes.AttributeValueMemberSS); ok {
				r.children = ss.Value
			}
			out[r.key] = r
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out
		}
		start = res.LastEvaluatedKey
	}
}

func str(v ddbtypes.AttributeValue) string {
	if s, ok := v.(*ddbtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// owners counts held leases per worker (unfinished shards only).
func owners(ls map[string]leaseRow) map[string]int {
	out := map[string]int{}
	for _, l := range ls {
		if l.checkpoint != lease.ShardEnd && l.owner != "" {
			out[l.owner]++
		}
	}
	return out
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return testenv.Eventually(t, d, 50*time.Millisecond, what, cond)
}

// waitDelivered waits until every sent id was delivered and reports duplicates.
func (e *env) waitDelivered(d time.Duration) (dups []string) {
	t := e.t
	t.Helper()
	ids := e.sent.allIDs()
	var missing []string
	start := time.Now()
	for {
		missing, dups = e.rec.check(ids)
		if len(missing) == 0 {
			break
		}
		if time.Since(start) > d {
			t.Fatalf("%d of %d calls never delivered (e.g. %v)", len(missing), len(ids), missing[:min(3, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d calls delivered, %d duplicates", len(ids), len(dups))
	return dups
}

// waitCheckpointsAtEnd waits until every shard's checkpoint is the last sequence number written
// to it (or SHARD_END).
func (e *env) waitCheckpointsAtEnd(d time.Duration) {
	t := e.t
	t.Helper()
	e.sent.mu.Lock()
	last := maps.Clone(e.sent.last)
	e.sent.mu.Unlock()
	var ls map[string]leaseRow
	eventually(t, d, "checkpoints at the last sequence numbers", func() bool {
		ls = e.leases()
		for shard, seq := range last {
			if cp := ls[shard].checkpoint; cp != seq && cp != lease.ShardEnd {
				return false
			}
		}
		return true
	})
	for _, k := range slices.Sorted(maps.Keys(last)) {
		t.Logf("shard %s checkpoint %s", k, ls[k].checkpoint)
	}
}

func newParser(t testing.TB) *accesslog.Parser {
	t.Helper()
	p, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		t.Fatalf("new parser: %v", err)
	}
	return p
}

// checkDups accepts duplicates only when a lease changed hands: a worker whose lease was lost
// (stolen, or a renewal that timed out on a loaded machine) stops without checkpointing and the
// next holder reads again from the last checkpoint. Duplicates with no lost lease are a bug.
func checkDups(t testing.TB, dups []string, workers ...*worker) {
	t.Helper()
	if len(dups) == 0 {
		return
	}
	var lost float64
	for _, w := range workers {
		lost += w.counter("apigw_connector_lease_lost_total", "")
	}
	if lost == 0 {
		t.Errorf("%d calls delivered twice though no lease was lost (e.g. %s)", len(dups), dups[0])
		return
	}
	t.Logf("%d duplicates after %v lost leases (at-least-once re-reads from the last checkpoint)", len(dups), lost)
}
