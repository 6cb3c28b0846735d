package kinesis

import (
	"context"
	"errors"
	"log/slog"
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
)

// shardHandle is what a shard reader needs of its lease (*lease.Handle).
type shardHandle interface {
	ShardID() string
	Checkpoint() (seq string, sub int64)
	Lost() <-chan struct{}
	SaveCheckpoint(ctx context.Context, seq string) error
	ShardEnded(ctx context.Context, childShardIDs []string) error
}

// readerDeps is what every shard reader of one worker shares.
type readerDeps struct {
	cfg      Config
	api      KinesisAPI
	stream   stream
	lister   *shardLister
	sub      Submitter
	m        *metrics
	log      *slog.Logger
	hardStop <-chan struct{} // closed when Shutdown's deadline passed: give up waiting at once
	// onStart, when set (tests), observes each shard reader's starting checkpoint.
	onStart func(shard, checkpoint string)
}

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
	startSeq, _ := r.h.Checkpoint()
	if startSeq == lease.ShardEnd {
		return // already finished; the lease layer hands it out only by mistake
	}
	r.cp = newCheckpointer(startSeq)
	if r.d.onStart != nil {
		r.d.onStart(r.shard, startSeq)
	}
	r.log.Info("reading shard", "checkpoint", startSeq)

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
		r.fetch(fetchCtx, startSeq, q)
	}()

	tickerDone := make(chan struct{})
	var tickerWG sync.WaitGroup
	tickerWG.Add(1)
	go func() {
		defer tickerWG.Done()
		t := time.NewTicker(r.d.cfg.CheckpointInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.flush(ctx)
			case <-tickerDone:
				return
			}
		}
	}()

	end := r.submitAll(fetchCtx, deliveryCtx, q)
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
	r.flush(ctx)
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
	if len(children) == 0 {
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
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
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
	r.log.Info("shard ended", "children", children)
}

// submitAll hands every fetched record to the pipeline in order, until the fetch stops or the
// shard ends (returned).
func (r *shardRun) submitAll(fetchCtx, deliveryCtx context.Context, q *prefetchQueue) *shardEnd {
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
			b := pipeline.Batch{
				Source:  r.source,
				Format:  pipeline.FormatCloudWatchLogs,
				Records: []pipeline.Record{{ID: seq, Data: rec.Data}},
			}
			if !r.submit(fetchCtx, deliveryCtx, b, seq, f.readAt) {
				return nil
			}
			rec.Data = nil // let the pipeline own the only reference
		}
	}
}

// submit hands one record over, retrying while the pipeline refuses it and the fetch goes on.
func (r *shardRun) submit(fetchCtx, deliveryCtx context.Context, b pipeline.Batch, seq string, readAt time.Time) bool {
	backoff := r.d.cfg.PollInterval
	for {
		if fetchCtx.Err() != nil {
			return false
		}
		s, err := r.d.sub.Submit(deliveryCtx, b)
		if err == nil {
			r.cp.add(seq, s, readAt)
			return true
		}
		if fetchCtx.Err() != nil || deliveryCtx.Err() != nil {
			return false
		}
		r.d.m.errors.WithLabelValues("submit").Inc()
		r.log.Error("hand record to the pipeline", "seq", seq, "err", err)
		if !sleepCtx(fetchCtx, backoff) {
			return false
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// flush moves the cursor over the settled prefix, refreshes the gauges and writes the
// checkpoint when it moved, while the lease is held.
func (r *shardRun) flush(ctx context.Context) {
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
	seq, moved := r.cp.toWrite()
	if !moved || r.lost.Load() {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
	defer cancel()
	if err := r.h.SaveCheckpoint(wctx, seq); err != nil {
		if errors.Is(err, lease.ErrLeaseLost) {
			r.markLost()
			return
		}
		r.d.m.errors.WithLabelValues("checkpoint").Inc()
		r.log.Error("write checkpoint", "seq", seq, "err", err)
		return
	}
	r.cp.markWritten(seq)
	r.checkpoints.Inc()
}

// fetch polls GetRecords at most once per PollInterval and queues the results.
func (r *shardRun) fetch(ctx context.Context, startSeq string, q *prefetchQueue) {
	var (
		iter     *string
		lastSeq  string // last record fetched: where to resume when the iterator expires
		backoff  time.Duration
		lastCall time.Time
	)
	for ctx.Err() == nil {
		if iter == nil {
			it, err := r.iterator(ctx, startSeq, lastSeq)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.d.m.errors.WithLabelValues("get_shard_iterator").Inc()
				r.log.Error("get shard iterator", "err", err)
				backoff = nextBackoff(backoff, r.d.cfg.PollInterval)
				if !sleepCtx(ctx, backoff) {
					return
				}
				continue
			}
			iter = it
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
			switch {
			case errors.As(err, &expired):
				r.expired.Inc()
				r.log.Info("shard iterator expired: getting a new one", "after", lastSeq)
				iter = nil
			case errors.As(err, &throttled), errors.As(err, &kmsThrottled):
				r.throttles.Inc()
				backoff = nextBackoff(backoff, r.d.cfg.PollInterval)
				r.log.Warn("GetRecords throttled: backing off (other consumers share the 5 calls/s and 2 MB/s per shard)", "backoff", backoff)
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
			q.put(ctx, fetched{end: &shardEnd{children: children}})
			return
		}
		iter = out.NextShardIterator
	}
}

// iterator gets a shard iterator after the last record fetched, else at the lease's checkpoint
// or the configured initial position.
func (r *shardRun) iterator(ctx context.Context, startSeq, lastSeq string) (*string, error) {
	in := &kinesis.GetShardIteratorInput{
		ShardId: aws.String(r.shard), StreamName: r.d.stream.name, StreamARN: r.d.stream.arn,
	}
	pos := startSeq
	if lastSeq != "" {
		pos = lastSeq
	}
	if pos == "" {
		pos = r.d.cfg.InitialPosition
	}
	switch pos {
	case PositionTrimHorizon:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case PositionLatest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	case PositionAtTimestamp:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(r.d.cfg.InitialTimestamp)
	default:
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(pos)
	}
	out, err := r.d.api.GetShardIterator(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.ShardIterator, nil
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
