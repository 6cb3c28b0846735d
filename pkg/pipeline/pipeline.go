package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
)

// ErrClosed is returned by Submit after Shutdown began.
var ErrClosed = errors.New("pipeline is shut down")

// Forwarder delivers one call. Its contract, which the pipeline relies on:
// nil means delivered; an error while ctx is still live means permanently
// rejected (transient failures are retried inside Deliver, without limit);
// an error after ctx ended means abandoned. An error with an AlreadyHeld()
// method reporting true is a delivery the node already had (counted apart).
// call is the pipeline's until Deliver returns, and reused after: a forwarder
// that keeps a call keeps a copy.
type Forwarder interface {
	Deliver(ctx context.Context, call *accesslog.APICall) error
}

// Filter is optionally implemented by a Forwarder: false skips the call.
type Filter interface {
	Filter(call *accesslog.APICall) bool
}

// Config is the `pipeline:` section.
type Config struct {
	// MaxBufferedCalls bounds memory: parsed calls waiting for a forwarding slot.
	// When full, Submit blocks and the source stops reading (backpressure).
	MaxBufferedCalls int `yaml:"max_buffered_calls"`
	// Workers is the number of calls in flight to the node; set from node.concurrency.
	Workers int `yaml:"-"`
	// Hosts name the API host of lines without a domainName; set from the
	// access_log section.
	Hosts HostRules `yaml:"-"`
}

// DefaultConfig buffers a few thousand calls: a few Kinesis records' worth.
func DefaultConfig() Config { return Config{MaxBufferedCalls: 4096, Workers: 64} }

// Validate checks the bounds.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBufferedCalls < 1 || c.MaxBufferedCalls > 1<<20 {
		errs = append(errs, fmt.Errorf("pipeline.max_buffered_calls must be between 1 and 1048576, got %d: set pipeline.max_buffered_calls (env APIGW_CONNECTOR_PIPELINE_MAX_BUFFERED_CALLS)", c.MaxBufferedCalls))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("node.concurrency must be at least 1, got %d: set node.concurrency (env APIGW_CONNECTOR_NODE_CONCURRENCY)", c.Workers))
	}
	return errors.Join(append(errs, c.Hosts.Validate())...)
}

type job struct {
	ctx  context.Context
	call accesslog.APICall
	s    *Settlement
}

// jobPool recycles jobs: with its call, a job (384 bytes) is the largest
// allocation of a call, and the collector's work grows with what is allocated.
var jobPool = sync.Pool{New: func() any { return new(job) }}

func freeJob(j *job) {
	*j = job{}
	jobPool.Put(j)
}

// Pipeline decodes, parses and forwards batches, and settles them.
type Pipeline struct {
	cfg    Config
	fwd    Forwarder
	filter Filter
	dec    *cwlogs.Decoder
	parser *accesslog.Parser
	log    *slog.Logger
	m      *metrics
	hosts  *hostResolver

	queue chan *job
	// A full queue makes Submit wait until it has drained to lowWater, not
	// for each free slot: else, under a backlog, every call a worker takes
	// wakes the submitting goroutine for one more (a park and a wake-up per
	// call: 3.2 parks per call fell to 2.3 in replay).
	lowWater int
	// queued counts the calls in queue (after the send, so a worker may take
	// one first and see it below): unlike len(queue), its order with
	// roomWanted is defined, so a Submit cannot wait for a wake-up no worker
	// will send.
	queued     atomic.Int64
	roomWanted atomic.Bool // a Submit waits for room (roomMu, room)
	roomMu     sync.Mutex
	room       chan struct{} // closed when the queue is down to lowWater

	mu       sync.RWMutex // guards closed and submits.Add against Shutdown
	closed   bool
	submits  sync.WaitGroup // Submit calls in progress: the queue's senders
	workers  sync.WaitGroup
	hardStop context.Context // cancelled when Shutdown's deadline passes: abandon what is left
	abort    context.CancelFunc
	started  bool
}

// New builds a pipeline; Start launches its forwarding workers.
func New(cfg Config, fwd Forwarder, dec *cwlogs.Decoder, parser *accesslog.Parser, reg prometheus.Registerer, log *slog.Logger) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fwd == nil || dec == nil || parser == nil {
		return nil, errors.New("pipeline: forwarder, decoder and parser are required")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register pipeline metrics: %w", err)
	}
	hs, abort := context.WithCancel(context.Background())
	p := &Pipeline{cfg: cfg, fwd: fwd, dec: dec, parser: parser, log: log, m: m,
		queue: make(chan *job, cfg.MaxBufferedCalls), hardStop: hs, abort: abort,
		lowWater: cfg.MaxBufferedCalls - max(1, cfg.MaxBufferedCalls/4),
		hosts:    &hostResolver{rules: cfg.Hosts, log: log, warned: map[string]bool{}}}
	p.filter, _ = fwd.(Filter)
	return p, nil
}

// Start launches the forwarding workers.
func (p *Pipeline) Start(_ context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return nil
	}
	p.started = true
	for range p.cfg.Workers {
		p.workers.Add(1)
		go p.work()
	}
	return nil
}

// Shutdown stops accepting batches and lets buffered calls finish; when ctx
// ends first, the rest are abandoned (their batches settle unsettled, so no
// source acknowledges them).
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if already {
		return nil
	}
	var err error
	wait := func(wg *sync.WaitGroup) {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("pipeline shutdown: %w", ctx.Err())
			p.abort() // Submit and Deliver give up; what is left is abandoned
			<-done
		}
	}
	wait(&p.submits)
	close(p.queue) // no sender is left
	p.mu.RLock()
	started := p.started
	p.mu.RUnlock()
	if !started {
		for j := range p.queue {
			j.s.finish(resultAbandoned)
		}
	}
	wait(&p.workers)
	p.abort()
	return err
}

func (p *Pipeline) work() {
	defer p.workers.Done()
	for j := range p.queue {
		p.m.buffered.Dec()
		if p.queued.Add(-1) <= int64(p.lowWater) && p.roomWanted.Load() {
			p.makeRoom()
		}
		p.deliver(j)
		freeJob(j) // the forwarder keeps nothing of the call (Forwarder)
	}
}

// alreadyHeld reports an error saying the node held the call already (apart from
// deliver: the target of errors.As escapes, and would cost every call an allocation).
func alreadyHeld(err error) bool {
	var held interface{ AlreadyHeld() bool }
	return errors.As(err, &held) && held.AlreadyHeld()
}

func (p *Pipeline) deliver(j *job) {
	if j.ctx.Err() != nil {
		j.s.finish(resultAbandoned)
		return
	}
	err := p.fwd.Deliver(j.ctx, &j.call)
	// An error reporting AlreadyHeld (node.AlreadyHeldError) is a delivery the
	// node had seen before: settled as delivered, counted apart.
	repeat := err != nil && alreadyHeld(err)
	if repeat {
		j.s.mu.Lock()
		j.s.outcome.AlreadyHeld++
		j.s.mu.Unlock()
		err = nil
	}
	switch {
	case err == nil:
		if j.s.dedup != nil {
			j.s.dedup.MarkDelivered(j.call.NodeID)
		}
		if !repeat { // a repeat says nothing of freshness
			p.observeAge(&j.call)
		}
		j.s.finish(resultDelivered)
	case j.ctx.Err() != nil:
		j.s.finish(resultAbandoned)
	default:
		// The forwarder counted and logged the rejection with its code.
		j.s.finish(resultRejected)
	}
}

// Submit decodes and parses the batch in the caller's goroutine and queues its
// calls, blocking while the buffer is full. The returned Settlement is done
// once every call is delivered, rejected, or abandoned because ctx ended.
func (p *Pipeline) Submit(ctx context.Context, b Batch) (*Settlement, error) {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, ErrClosed
	}
	p.submits.Add(1)
	p.mu.RUnlock()
	defer p.submits.Done()
	start := time.Now()
	bctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.hardStop, cancel)
	s := &Settlement{done: make(chan struct{}), dedup: b.Dedup, m: p.m, start: start,
		release: func() { stop(); cancel() }}
	s.pending.Store(1) // a guard, dropped when every call is queued
	s.outcome.Records = len(b.Records)
	p.m.batches.Inc()

	for i := range b.Records {
		p.submitRecord(bctx, s, b, &b.Records[i])
	}
	s.finish(resultNone) // drop the guard: the batch may now complete
	return s, nil
}

// submitRecord decodes one record and queues its calls. A panic while
// decoding or parsing (a bug on some input nobody foresaw) skips the rest of
// that record with a counted, logged reason instead of crashing the worker:
// a crash would replay the same record forever.
func (p *Pipeline) submitRecord(ctx context.Context, s *Settlement, b Batch, r *Record) {
	defer func() {
		if v := recover(); v != nil {
			s.outcome.DecodeErrors++
			p.m.decodeErrors.WithLabelValues("panic").Inc()
			p.log.Error("skipping the rest of a record that crashed the decoder; please report it with the record",
				"source", b.Source, "record", r.ID, "bytes", len(r.Data), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	p.m.records.Inc()
	if b.Format == FormatLines {
		p.submitLines(ctx, s, b.Source, r)
		return
	}
	// Documents are the unit of failure: a bad one is counted and logged
	// with its position, and every other document of the record delivered.
	st := p.dec.DecodeEach(r.Data, func(meta *cwlogs.Meta, ev *cwlogs.Event) {
		p.submitLine(ctx, s, ev.Message, b.Source, r.ID, meta, ev)
	}, func(de *cwlogs.DecodeError) {
		s.outcome.DecodeErrors++
		p.m.decodeErrors.WithLabelValues(de.Reason).Inc()
		p.log.Warn("skipping undecodable document", "source", b.Source, "record", r.ID,
			"bytes", len(r.Data), "reason", de.Reason, "position", de.Position(), "err", de)
	})
	p.m.controlMessages.Add(float64(st.ControlMessages))
}

func (p *Pipeline) submitLines(ctx context.Context, s *Settlement, source string, r *Record) {
	data := r.Data
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		p.submitLine(ctx, s, line, source, r.ID, nil, nil)
	}
}

// submitLine counts one log event, parses it, names its host and node id,
// and queues its call. The call is parsed into its job: handed to the
// filter and the host rules by pointer, a call of its own would escape to
// the heap, a second allocation of its size per call.
func (p *Pipeline) submitLine(ctx context.Context, s *Settlement, line []byte, source, recordID string, meta *cwlogs.Meta, ev *cwlogs.Event) {
	j := jobPool.Get().(*job)
	if !p.prepare(s, &j.call, line, source, recordID, meta, ev) {
		freeJob(j)
		return
	}
	s.add()
	if ctx.Err() != nil {
		freeJob(j)
		s.finish(resultAbandoned)
		return
	}
	j.ctx, j.s = ctx, s
	p.m.buffered.Inc() // before the send: a worker may take the call and Dec at once
	select {
	case p.queue <- j:
		p.queued.Add(1)
		return
	default:
	}
	if p.waitRoom(ctx) {
		select {
		case p.queue <- j:
			p.queued.Add(1)
			return
		case <-ctx.Done():
		}
	}
	p.m.buffered.Dec()
	freeJob(j)
	s.finish(resultAbandoned)
}

// prepare parses line into call and gives it its host and node id; false
// when the call is not to be queued (not an API call, no host, filtered, a
// duplicate), which it counts.
func (p *Pipeline) prepare(s *Settlement, call *accesslog.APICall, line []byte, source, recordID string, meta *cwlogs.Meta, ev *cwlogs.Event) bool {
	var eventID []byte
	if ev != nil {
		eventID = ev.ID
	}
	s.outcome.Events++
	p.m.events.Inc()
	var err error
	if *call, err = p.parser.Parse(line); err != nil {
		s.outcome.ParseErrors++
		reason := "other"
		var pe *accesslog.ParseError
		if errors.As(err, &pe) {
			reason = pe.Reason
		}
		p.m.parseErrors.WithLabelValues(reason).Inc()
		attrs := []any{"source", source, "record", recordID, "reason", reason, "err", err}
		if meta != nil {
			attrs = append(attrs, "account", meta.Owner, "log_group", meta.LogGroup, "log_stream", meta.LogStream, "event", string(eventID))
		}
		p.log.Warn("skipping log line that is not an API call", attrs...)
		return false
	}
	var logGroup string
	if meta != nil {
		logGroup = meta.LogGroup
		call.Account, call.LogGroup = meta.Owner, meta.LogGroup
	}
	if ev != nil && ev.Timestamp > 0 {
		call.LogTime = time.UnixMilli(ev.Timestamp)
	}
	p.m.accountCall(call.Account)
	if !p.hosts.resolve(call, logGroup) {
		s.outcome.ParseErrors++
		p.m.noHost.Inc() // resolve warned once for the log group
		return false
	}
	var key eventKey
	if len(eventID) > 0 && meta != nil {
		key = envelopeKey(meta, eventID)
	} else {
		sum := sha256.Sum256(line)
		key = lineKey(sum, s.occ.next(recordID, sum))
	}
	call.NodeID = nodeID(call, &key)
	s.outcome.Calls++
	p.m.calls.Inc()
	if p.filter != nil && !p.filter.Filter(call) {
		s.outcome.Filtered++
		p.m.filtered.Inc()
		return false
	}
	if s.dedup != nil && s.dedup.Delivered(call.NodeID) {
		s.outcome.Duplicates++
		p.m.duplicate.Inc()
		return false
	}
	return true
}

// waitRoom waits, once the queue is full, until the workers have taken it
// down to lowWater; false when ctx ended first.
func (p *Pipeline) waitRoom(ctx context.Context) bool {
	p.roomMu.Lock()
	// The flag before the count: a worker that took the count to lowWater
	// without seeing the flag did so before this load sees the count.
	p.roomWanted.Store(true)
	if p.queued.Load() <= int64(p.lowWater) {
		if p.room == nil {
			p.roomWanted.Store(false)
		}
		p.roomMu.Unlock()
		return true
	}
	if p.room == nil {
		p.room = make(chan struct{})
	}
	room := p.room
	p.roomMu.Unlock()
	select {
	case <-room:
		return true
	case <-ctx.Done():
		return false
	}
}

// makeRoom wakes the Submits waiting for room.
func (p *Pipeline) makeRoom() {
	p.roomMu.Lock()
	if p.room != nil && p.queued.Load() <= int64(p.lowWater) {
		close(p.room)
		p.room = nil
		p.roomWanted.Store(false)
	}
	p.roomMu.Unlock()
}

// observeAge records how old a call was when the node accepted it.
func (p *Pipeline) observeAge(c *accesslog.APICall) {
	at := c.RequestTime
	if at.IsZero() {
		at = c.LogTime
	}
	if at.IsZero() {
		return
	}
	p.m.callAge.Observe(max(time.Since(at).Seconds(), 0))
}

type result int

const (
	resultNone result = iota
	resultDelivered
	resultRejected
	resultAbandoned
)

// Settlement is a batch's completion signal. It is done only when every call
// of the batch reached a final state; there is no other way to learn the
// batch's outcome, so a source cannot acknowledge early.
type Settlement struct {
	done    chan struct{}
	dedup   Deduper
	occ     occurrences // identical lines seen in the current record; Submit's goroutine only
	pending atomic.Int64
	m       *metrics
	start   time.Time
	release func()

	mu      sync.Mutex // guards outcome counters written by workers
	outcome Outcome
}

func (s *Settlement) add() { s.pending.Add(1) }

func (s *Settlement) finish(r result) {
	if r != resultNone {
		s.mu.Lock()
		switch r {
		case resultDelivered:
			s.outcome.Delivered++
		case resultRejected:
			s.outcome.Rejected++
		case resultAbandoned:
			s.outcome.Abandoned++
		}
		s.mu.Unlock()
		s.m.result[r].Inc()
	}
	if s.pending.Add(-1) == 0 {
		s.release()
		s.m.settleDuration.Observe(time.Since(s.start).Seconds())
		close(s.done)
	}
}

var resultLabel = map[result]string{resultDelivered: "delivered", resultRejected: "rejected", resultAbandoned: "abandoned"}

// Done is closed once the batch has settled (or was abandoned).
func (s *Settlement) Done() <-chan struct{} { return s.done }

// Outcome waits for Done and returns the batch's counts.
func (s *Settlement) Outcome() Outcome {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcome
}

// Wait waits for the batch to settle or ctx to end.
func (s *Settlement) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-s.done:
		return s.Outcome(), nil
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
}
