package kinesis

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/lease"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

const (
	maxBackoff        = 10 * time.Second
	checkpointTimeout = 10 * time.Second
	// firstCheckpointPoll is how often a new lease looks for its first settled records, so
	// that even a worker holding the lease for less than a checkpoint interval leaves a
	// checkpoint behind and its successor does not read the same records again.
	firstCheckpointPoll = 50 * time.Millisecond
	// failedShardHold is how long a shard that cannot be read (AT_TIMESTAMP checkpoint and no
	// kinesis.initial_timestamp) is held before its lease is released: long enough not to flap
	// between workers, short enough for a correctly configured worker to take it soon.
	failedShardHold = time.Minute
)

// shardHandle is what a shard reader needs of its lease (*lease.Handle).
type shardHandle interface {
	ShardID() string
	Checkpoint() (seq string, sub int64)
	Lost() <-chan struct{}
	SaveCheckpointAt(ctx context.Context, seq string, sub int64) error
	ShardEnded(ctx context.Context, childShardIDs []string) error
}

// readerDeps is what every shard reader of one worker shares.
type readerDeps struct {
	cfg      Config
	api      KinesisAPI
	stream   stream
	lister   *shardLister
	submit   submitFunc
	m        *metrics
	log      *slog.Logger
	hardStop <-chan struct{} // closed when Shutdown's deadline passed: give up waiting at once
	// onStart and onEnd, when set (tests), observe each shard reader's start (with its
	// checkpoint) and return.
	onStart func(shard, checkpoint string)
	onEnd   func(shard string)
	// failHold overrides failedShardHold (tests).
	failHold time.Duration
}

// submitFunc hands one batch to the pipeline (Submitter.Submit, or a test's stand-in).
type submitFunc func(ctx context.Context, b pipeline.Batch) (settlement, error)

func submitterFunc(s Submitter) submitFunc {
	return func(ctx context.Context, b pipeline.Batch) (settlement, error) {
		st, err := s.Submit(ctx, b)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return st, nil
	}
}

// settledAlready stands for a record with nothing to deliver (a KPL aggregate holding no user
// record), so the checkpoint can still move past it.
type settledAlready struct{}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (settledAlready) Done() <-chan struct{}     { return closedCh }
func (settledAlready) Outcome() pipeline.Outcome { return pipeline.Outcome{} }

// shardRun reads one leased shard until the lease is lost, the worker stops or the shard ends.
type shardRun struct {
	d      *readerDeps
	h      shardHandle
	shard  string
	source string
	log    *slog.Logger
	cp     *checkpointer

	lost       atomic.Bool
	stopFetch  context.CancelFunc
	stopDelivr context.CancelFunc
	flushMu    sync.Mutex

	recordsRead, bytesRead, getRecords, throttles, checkpoints, undecodable, expired prometheus.Counter
	aggregated, userRecords, trimFallbacks, gone                                     prometheus.Counter
	millisBehind, inFlight, checkpointAge                                            prometheus.Gauge
}

func newShardRun(d *readerDeps, h shardHandle) *shardRun {
	id := h.ShardID()
	return &shardRun{
		d: d, h: h, shard: id, source: "kinesis/" + id,
		log:           d.log.With("shard", id),
		recordsRead:   d.m.recordsRead.WithLabelValues(id),
		bytesRead:     d.m.bytesRead.WithLabelValues(id),
		getRecords:    d.m.getRecords.WithLabelValues(id),
		throttles:     d.m.throttles.WithLabelValues(id),
		checkpoints:   d.m.checkpoints.WithLabelValues(id),
		undecodable:   d.m.undecodable.WithLabelValues(id),
		expired:       d.m.expiredIterats.WithLabelValues(id),
		aggregated:    d.m.aggregated.WithLabelValues(id),
		userRecords:   d.m.userRecords.WithLabelValues(id),
		trimFallbacks: d.m.trimFallbacks.WithLabelValues(id),
		gone:          d.m.shardsGone.WithLabelValues(id),
		millisBehind:  d.m.millisBehind.WithLabelValues(id),
		inFlight:      d.m.inFlight.WithLabelValues(id),
		checkpointAge: d.m.checkpointAge.WithLabelValues(id),
	}
}

// markLost stops the shard at once: another worker owns it now, so nothing may be
// checkpointed and in-flight deliveries are abandoned (the new owner reads them again).
func (r *shardRun) markLost() {
	if r.lost.CompareAndSwap(false, true) {
		r.log.Warn("lease lost: stopping the shard without checkpointing")
	}
	r.stopFetch()
	r.stopDelivr()
}

// run is the body of lease.Processor.ProcessShard.
//
// Goroutines: the fetcher (GetRecords into the prefetch queue), the checkpoint ticker, a
// watchdog that ends delivery when the lease is lost or the grace period after a stop has
// passed, and the caller's goroutine handing records to the pipeline in order.
func (r *shardRun) run(ctx context.Context) {
	defer r.d.m.forgetShard(r.shard)
	if r.d.onEnd != nil {
		defer r.d.onEnd(r.shard)
	}
	seq, sub := r.h.Checkpoint()
	start := position{seq: seq, sub: sub}
	if start.seq == lease.ShardEnd {
		return // already finished; the lease layer hands it out only by mistake
	}
	if start.seq == PositionAtTimestamp && r.d.cfg.InitialTimestamp.IsZero() {
		r.failNoTimestamp(ctx)
		return
	}
	r.cp = newCheckpointer(start)
	if r.d.onStart != nil {
		r.d.onStart(r.shard, start.seq)
	}
	r.log.Info("reading shard", "checkpoint", start.seq, "sub_sequence", start.sub)

	fetchCtx, stopFetch := context.WithCancel(ctx)
	// Delivery outlives the fetch by the grace period (see the watchdog), so a graceful stop
	// lets in-flight calls settle and be checkpointed.
	deliveryCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	r.stopFetch, r.stopDelivr = stopFetch, stopDelivery
	defer stopFetch()
	defer stopDelivery()

	runDone := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(runDone)

	wg.Add(1)
	go func() { // watchdog
		defer wg.Done()
		select {
		case <-r.h.Lost():
			r.markLost()
			return
		case <-ctx.Done():
		case <-runDone:
			return
		}
		grace := time.NewTimer(r.d.cfg.ShutdownGrace)
		defer grace.Stop()
		select {
		case <-r.h.Lost():
			r.markLost()
		case <-grace.C:
			r.log.Warn("shutdown grace period over: abandoning unsettled records", "grace", r.d.cfg.ShutdownGrace)
			stopDelivery()
		case <-r.d.hardStop:
			stopDelivery()
		case <-runDone:
		}
	}()

	q := newPrefetchQueue(r.d.cfg.PrefetchBatches, r.d.cfg.PrefetchRecords)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer q.close()
		r.fetch(fetchCtx, start, q)
	}()

	tickerDone := make(chan struct{})
	var tickerWG sync.WaitGroup
	tickerWG.Add(1)
	go func() {
		defer tickerWG.Done()
		r.checkpointLoop(ctx, tickerDone)
	}()

	end := r.submitAll(fetchCtx, deliveryCtx, q, start)
	stopFetch()

	// Let what was handed over settle: until the delivery context ends (lost, grace over) or
	// everything settled. At a shard's end this is where the reader waits for the last record
	// before it may declare SHARD_END.
	_ = r.cp.waitAll(deliveryCtx)
	close(tickerDone)
	tickerWG.Wait()
	if r.lost.Load() {
		return
	}
	stopDelivery() // abandon whatever the grace period did not settle
	r.flush(ctx)   // the final checkpoint: everything settled by now
	if r.lost.Load() {
		return
	}
	if end == nil {
		return
	}
	if r.cp.isStuck() || r.cp.inFlight() > 0 {
		r.log.Warn("stopped before the closed shard was finished; the next owner resumes it")
		return
	}
	children := end.children
	if len(children) == 0 && !end.gone {
		// Older APIs and emulators return no ChildShards: ask the shard list.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
		var err error
		children, err = r.d.lister.childrenOf(lctx, r.shard)
		cancel()
		if err != nil {
			r.d.m.errors.WithLabelValues("list_shards").Inc()
			r.log.Error("find child shards at shard end", "err", err)
		}
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.writeTimeout())
	defer cancel()
	if err := r.h.ShardEnded(ectx, children); err != nil {
		if errors.Is(err, lease.ErrLeaseLost) {
			r.markLost()
			return
		}
		r.d.m.errors.WithLabelValues("shard_end").Inc()
		r.log.Error("checkpoint SHARD_END", "err", err)
		return
	}
	r.checkpoints.Inc()
	r.log.Info("shard ended", "children", children, "gone", end.gone)
}

// writeTimeout bounds a checkpoint write. A write holds its lease's lock in pkg/lease, so one
// that hangs longer than a renewal period would also hold back the renewals that tell this
// worker whether it still owns the lease.
func (r *shardRun) writeTimeout() time.Duration {
	return min(checkpointTimeout, r.d.cfg.FailoverTime/3)
}

// failNoTimestamp handles a lease whose checkpoint is AT_TIMESTAMP (written by a worker
// configured with a timestamp) while this worker has none: reading from anywhere else would
// skip or repeat data, so the shard is not read. The lease is held for a while (so it does not
// flap between workers) and then released for a worker that has the setting.
func (r *shardRun) failNoTimestamp(ctx context.Context) {
	r.d.m.shardFailures.WithLabelValues("at_timestamp_without_initial_timestamp").Inc()
	r.log.Error("cannot read shard: its lease checkpoint is AT_TIMESTAMP but no timestamp is configured; " +
		"set kinesis.initial_timestamp (env APIGW_CONNECTOR_KINESIS_INITIAL_TIMESTAMP, RFC 3339) to the " +
		"timestamp the other application version used")
	hold := r.d.failHold
	if hold <= 0 {
		hold = failedShardHold
	}
	t := time.NewTimer(hold)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.h.Lost():
	case <-t.C:
	}
}

// checkpointLoop writes the checkpoint as soon as the first records of the lease settled, then
// every checkpoint interval, until done is closed.
func (r *shardRun) checkpointLoop(ctx context.Context, done <-chan struct{}) {
	interval := r.d.cfg.CheckpointInterval
	first := min(interval, firstCheckpointPoll)
	t := time.NewTicker(first)
	defer t.Stop()
	waitingFirst := true
	for {
		select {
		case <-t.C:
			// After the first write attempt, failed or not, the interval paces retries: a
			// table that refuses writes is not asked 20 times a second.
			if r.flush(ctx) && waitingFirst {
				waitingFirst = false
				t.Reset(interval)
			}
		case <-done:
			return
		}
	}
}

// submitAll hands every fetched record to the pipeline in order, until the fetch stops or the
// shard ends (returned). KPL aggregates are handed over one user record at a time. A resume
// from a checkpoint reads the checkpointed record again (AT_SEQUENCE_NUMBER, as the Java KCL)
// and skips what the checkpoint covers: the record itself, or the user records of an
// aggregate up to the checkpoint's sub-sequence number.
func (r *shardRun) submitAll(fetchCtx, deliveryCtx context.Context, q *prefetchQueue, start position) *shardEnd {
	skipping := isSequenceNumber(start.seq)
	for {
		f, ok := q.get(fetchCtx)
		if !ok {
			return nil
		}
		if f.end != nil {
			return f.end
		}
		for i := range f.records {
			rec := &f.records[i]
			seq := aws.ToString(rec.SequenceNumber)
			covered := int64(-1) // sub-sequence numbers <= covered were processed before
			if skipping {
				skipping = false
				if seq == start.seq {
					covered = start.sub
				}
			}
			subs, aggregated := deaggregate(rec.Data)
			if !aggregated {
				if covered < 0 && !r.submitOne(fetchCtx, deliveryCtx, position{seq: seq}, seq, rec.Data, f.readAt) {
					return nil
				}
				rec.Data = nil // let the pipeline own the only reference
				continue
			}
			r.aggregated.Inc()
			r.userRecords.Add(float64(len(subs)))
			if len(subs) == 0 && covered < 0 {
				r.cp.add(position{seq: seq}, settledAlready{}, f.readAt)
			}
			for k, data := range subs {
				if int64(k) <= covered {
					continue
				}
				id := seq + "/" + strconv.Itoa(k)
				if !r.submitOne(fetchCtx, deliveryCtx, position{seq: seq, sub: int64(k)}, id, data, f.readAt) {
					return nil
				}
			}
			rec.Data = nil
		}
	}
}

func (r *shardRun) submitOne(fetchCtx, deliveryCtx context.Context, pos position, id string, data []byte, readAt time.Time) bool {
	b := pipeline.Batch{
		Source:  r.source,
		Format:  pipeline.FormatCloudWatchLogs,
		Records: []pipeline.Record{{ID: id, Data: data}},
	}
	return r.submit(fetchCtx, deliveryCtx, b, pos, readAt)
}

// submit hands one record over, retrying while the pipeline refuses it and the fetch goes on.
func (r *shardRun) submit(fetchCtx, deliveryCtx context.Context, b pipeline.Batch, pos position, readAt time.Time) bool {
	backoff := r.d.cfg.PollInterval
	for {
		if fetchCtx.Err() != nil {
			return false
		}
		s, err := r.d.submit(deliveryCtx, b)
		if err == nil {
			r.cp.add(pos, s, readAt)
			return true
		}
		if fetchCtx.Err() != nil || deliveryCtx.Err() != nil {
			return false
		}
		r.d.m.errors.WithLabelValues("submit").Inc()
		r.log.Error("hand record to the pipeline", "record", b.Records[0].ID, "err", err)
		if !sleepCtx(fetchCtx, backoff) {
			return false
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// flush moves the cursor over the settled prefix, refreshes the gauges and writes the
// checkpoint when it moved, while the lease is held. It reports whether it tried a write.
func (r *shardRun) flush(ctx context.Context) bool {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	_, undecodable := r.cp.advance()
	if undecodable > 0 {
		r.undecodable.Add(float64(undecodable))
	}
	r.inFlight.Set(float64(r.cp.inFlight()))
	defer func() {
		if t := r.cp.oldestUnwritten(); !t.IsZero() {
			r.checkpointAge.Set(time.Since(t).Seconds())
		} else {
			r.checkpointAge.Set(0)
		}
	}()
	pos, moved := r.cp.toWrite()
	if !moved || r.lost.Load() {
		return false
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.writeTimeout())
	defer cancel()
	if err := r.h.SaveCheckpointAt(wctx, pos.seq, pos.sub); err != nil {
		if errors.Is(err, lease.ErrLeaseLost) {
			r.markLost()
			return false
		}
		r.d.m.errors.WithLabelValues("checkpoint").Inc()
		r.log.Error("write checkpoint", "seq", pos.seq, "sub_sequence", pos.sub, "err", err)
		return true
	}
	r.cp.markWritten(pos)
	r.checkpoints.Inc()
	return true
}

// fetch polls GetRecords at most once per PollInterval and queues the results.
func (r *shardRun) fetch(ctx context.Context, start position, q *prefetchQueue) {
	var (
		iter     *string
		lastSeq  string // last record fetched: where to resume when the iterator expires
		backoff  time.Duration
		lastCall time.Time
		trimmed  bool // the checkpoint could not be resumed: start at TRIM_HORIZON instead
	)
	end := func(e *shardEnd) { q.put(ctx, fetched{end: e}) }
	for ctx.Err() == nil {
		if iter == nil {
			in := r.iteratorInput(start, lastSeq, trimmed)
			out, err := r.d.api.GetShardIterator(ctx, in)
			if err == nil {
				iter = out.ShardIterator
				if iter == nil {
					// No iterator and no error: nothing will ever come from this shard.
					r.log.Warn("GetShardIterator returned no iterator: ending the shard")
					end(&shardEnd{gone: true})
					return
				}
			} else {
				if ctx.Err() != nil {
					return
				}
				var notFound *types.ResourceNotFoundException
				var invalid *types.InvalidArgumentException
				switch {
				case errors.As(err, &notFound):
					r.shardGone("GetShardIterator", err)
					end(&shardEnd{gone: true})
					return
				case errors.As(err, &invalid) && !trimmed && in.StartingSequenceNumber != nil:
					// A checkpoint past the retention period (or not of this shard) can never
					// be had; retrying would hold the shard and its children forever.
					trimmed = true
					lastSeq = ""
					r.trimFallbacks.Inc()
					r.log.Warn("cannot resume at the checkpoint: restarting the shard at TRIM_HORIZON (records before it are gone)",
						"seq", aws.ToString(in.StartingSequenceNumber), "err", err)
					continue
				}
				r.d.m.errors.WithLabelValues("get_shard_iterator").Inc()
				backoff = nextBackoff(backoff, r.d.cfg.PollInterval)
				r.log.Error("get shard iterator", "err", err, "backoff", backoff)
				if !sleepCtx(ctx, backoff) {
					return
				}
				continue
			}
		}
		// Pace: every consumer of the stream shares 5 GetRecords/s per shard.
		wait := r.d.cfg.PollInterval - time.Since(lastCall)
		if backoff > wait {
			wait = backoff
		}
		if wait > 0 && !sleepCtx(ctx, wait) {
			return
		}
		lastCall = time.Now()
		out, err := r.d.api.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: iter, Limit: aws.Int32(int32(r.d.cfg.MaxRecords)), StreamARN: r.d.stream.arn,
		})
		r.getRecords.Inc()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var expired *types.ExpiredIteratorException
			var throttled *types.ProvisionedThroughputExceededException
			var kmsThrottled *types.KMSThrottlingException
			var notFound *types.ResourceNotFoundException
			switch {
			case errors.As(err, &notFound):
				r.shardGone("GetRecords", err)
				end(&shardEnd{gone: true})
				return
			case errors.As(err, &expired):
				r.expired.Inc()
				r.log.Info("shard iterator expired: getting a new one", "after", lastSeq)
				iter = nil
			case errors.As(err, &throttled), errors.As(err, &kmsThrottled):
				r.throttles.Inc()
				backoff = nextBackoff(backoff, r.d.cfg.PollInterval)
				r.log.Warn("GetRecords throttled: backing off (other consumers share the 5 calls/s and 2 MB/s per shard)", "backoff", backoff)
			case errors.Is(err, context.DeadlineExceeded):
				r.d.m.errors.WithLabelValues("get_records").Inc()
				backoff = nextBackoff(backoff, r.d.cfg.PollInterval)
				r.log.Warn("GetRecords got no answer within kinesis.request_timeout: retrying", "timeout", r.d.cfg.RequestTimeout, "backoff", backoff)
			default:
				r.d.m.errors.WithLabelValues("get_records").Inc()
				backoff = nextBackoff(backoff, r.d.cfg.PollInterval)
				r.log.Error("get records", "err", err, "backoff", backoff)
			}
			continue
		}
		backoff = 0
		if out.MillisBehindLatest != nil {
			r.millisBehind.Set(float64(*out.MillisBehindLatest))
		}
		if n := len(out.Records); n > 0 {
			var bytes int
			for i := range out.Records {
				bytes += len(out.Records[i].Data)
			}
			r.recordsRead.Add(float64(n))
			r.bytesRead.Add(float64(bytes))
			lastSeq = aws.ToString(out.Records[n-1].SequenceNumber)
			if !q.put(ctx, fetched{records: out.Records, readAt: lastCall}) {
				return
			}
		}
		if out.NextShardIterator == nil {
			var children []string
			for _, c := range out.ChildShards {
				if id := aws.ToString(c.ShardId); id != "" {
					children = append(children, id)
				}
			}
			r.log.Info("reached the end of the closed shard", "last", lastSeq, "children", children)
			end(&shardEnd{children: children})
			return
		}
		iter = out.NextShardIterator
	}
}

// shardGone logs and counts a shard Kinesis no longer knows. The Java KCL treats
// ResourceNotFoundException as the shard's end with no children; so does this reader, so that
// the lease does not hold the shard (and any children waiting on it) forever.
func (r *shardRun) shardGone(op string, err error) {
	r.gone.Inc()
	r.log.Warn("shard no longer exists (stream or shard deleted): ending it after what was read settles",
		"op", op, "err", err)
}

// iteratorInput asks for an iterator after the last record fetched; else at the lease's
// checkpoint (AT_SEQUENCE_NUMBER: a checkpoint inside a KPL aggregate needs its record again;
// submitAll skips what the checkpoint covers), or at its initial position.
func (r *shardRun) iteratorInput(start position, lastSeq string, trimmed bool) *kinesis.GetShardIteratorInput {
	in := &kinesis.GetShardIteratorInput{
		ShardId: aws.String(r.shard), StreamName: r.d.stream.name, StreamARN: r.d.stream.arn,
	}
	pos := start.seq
	if pos == "" {
		pos = r.d.cfg.InitialPosition
	}
	switch {
	case lastSeq != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(lastSeq)
	case trimmed || pos == PositionTrimHorizon:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case pos == PositionLatest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	case pos == PositionAtTimestamp:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(r.d.cfg.InitialTimestamp)
	default:
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(pos)
	}
	return in
}

// isSequenceNumber reports whether a checkpoint is a sequence number, not one of the
// positions TRIM_HORIZON, LATEST, AT_TIMESTAMP (or empty).
func isSequenceNumber(cp string) bool {
	switch cp {
	case "", PositionTrimHorizon, PositionLatest, PositionAtTimestamp, lease.ShardEnd:
		return false
	}
	return true
}

func nextBackoff(cur, base time.Duration) time.Duration {
	if cur < base {
		return base
	}
	return min(2*cur, maxBackoff)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
