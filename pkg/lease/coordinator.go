package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ShardLister reports the stream's shards.
type ShardLister interface {
	// ListShards returns every shard the stream still retains, open and closed.
	ListShards(ctx context.Context) ([]Shard, error)
}

// ShardListerFunc adapts a function to ShardLister.
type ShardListerFunc func(ctx context.Context) ([]Shard, error)

// ListShards calls f.
func (f ShardListerFunc) ListShards(ctx context.Context) ([]Shard, error) { return f(ctx) }

type state int

const (
	stateNew state = iota
	stateRunning
	stateStopping
	stateStopped
)

// Coordinator holds one worker's share of the leases of a lease table.
type Coordinator struct {
	tbl    table
	lister ShardLister
	proc   Processor
	cfg    Config
	log    *slog.Logger
	m      *metrics
	cm     *coordMetrics
	rnd    *rand.Rand // take loop only

	syncNow chan struct{}
	takeNow chan struct{}

	loopWG  sync.WaitGroup // take and shard sync loops
	renewWG sync.WaitGroup
	procWG  sync.WaitGroup

	mu         sync.Mutex
	state      state
	runCtx     context.Context // renewals; cancelled last (or by the caller: abrupt stop)
	runCancel  context.CancelFunc
	loopCancel context.CancelFunc // take and sync loops
	procCtx    context.Context    // parent of every processor's ctx
	procCancel context.CancelFunc
	held       map[string]*heldLease
	handingOff map[string]*heldLease    // leases we hand over: processor settling, checkpointOwner = us
	prevDone   map[string]chan struct{} // processors of leases no longer held, by key
	observed   map[string]observation   // per lease: counter/owner and when first seen so
	known      map[string]Lease         // last scan, updated locally on SHARD_END
	lastScanOK time.Time
	// syncChanged: the last shard sync created or deleted a lease.
	syncChanged atomic.Bool
	startedAt   time.Time // monotonic: expiry can be judged only after watching FailoverTime
	lastChange  time.Time // a lease of ours was acquired, lost, released or handed over

	goneParents map[string]bool // take loop only: parent leases read gone
}

type observation struct {
	counter int64
	owner   string
	since   time.Time // monotonic
}

// NewCoordinator checks cfg (zero durations take defaults) and registers the
// metrics on reg (nil: not registered).
func NewCoordinator(db DynamoDBAPI, lister ShardLister, proc Processor, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Coordinator, error) {
	if db == nil || lister == nil || proc == nil {
		return nil, errors.New("new lease coordinator: db, lister and processor are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new lease coordinator: %w", err)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cm, err := newCoordMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new lease coordinator: register metrics: %w", err)
	}
	// Every call below, whoever makes it, gets a deadline and is counted.
	db = guardedDB{next: db, timeout: cfg.RequestTimeout, calls: cm.ddbCalls}
	c := &Coordinator{
		tbl:         table{db: db, name: cfg.TableName},
		cm:          cm,
		lister:      lister,
		proc:        proc,
		cfg:         cfg,
		log:         log.With("table", cfg.TableName, "worker", cfg.WorkerID),
		rnd:         rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		syncNow:     make(chan struct{}, 1),
		takeNow:     make(chan struct{}, 1),
		held:        map[string]*heldLease{},
		handingOff:  map[string]*heldLease{},
		goneParents: map[string]bool{},
		prevDone:    map[string]chan struct{}{},
		observed:    map[string]observation{},
		known:       map[string]Lease{},
	}
	m, err := newMetrics(reg, c)
	if err != nil {
		return nil, fmt.Errorf("new lease coordinator: register metrics: %w", err)
	}
	c.m = m
	c.tbl = newTable(db, cfg.TableName, c.log, m)
	return c, nil
}

// WorkerID is the owner name this coordinator writes.
func (c *Coordinator) WorkerID() string { return c.cfg.WorkerID }

// Start makes sure the table exists (creating it when allowed, on-demand
// billing, waiting for ACTIVE), runs a first shard sync, and starts the
// renew, take and shard sync loops. ctx bounds the coordinator's whole life:
// cancelling it stops everything at once WITHOUT releasing leases (they
// expire, as after a crash); Shutdown is the graceful stop.
func (c *Coordinator) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.state != stateNew {
		c.mu.Unlock()
		return errors.New("start lease coordinator: already started")
	}
	c.state = stateRunning
	c.startedAt = time.Now()
	c.runCtx, c.runCancel = context.WithCancel(ctx)
	c.procCtx, c.procCancel = context.WithCancel(c.runCtx)
	c.mu.Unlock()

	if err := c.tbl.ensure(ctx, c.cfg.CreateTable); err != nil {
		c.m.errors.WithLabelValues("create_table").Inc()
		c.abort()
		return fmt.Errorf("start lease coordinator: %w", err)
	}
	// A first sync failing on a slow call (every call has a short deadline)
	// is worth a retry or two before the process gives up.
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt) * c.cfg.TakeInterval):
			}
		}
		if err = c.syncShards(ctx); err == nil || ctx.Err() != nil {
			break
		}
		c.log.Warn("first shard sync failed", "attempt", attempt+1, "err", err)
	}
	if err != nil {
		c.abort()
		return fmt.Errorf("start lease coordinator: %w", err)
	}

	loopCtx, loopCancel := context.WithCancel(c.runCtx)
	c.mu.Lock()
	c.loopCancel = loopCancel
	c.mu.Unlock()
	c.renewWG.Add(1)
	go c.renewLoop(c.runCtx)
	c.loopWG.Add(2)
	go c.takeLoop(loopCtx)
	go c.syncLoop(loopCtx)
	c.log.Info("lease coordinator started", "failover_time", c.cfg.FailoverTime, "take_interval", c.cfg.TakeInterval,
		"stable_scan_interval", c.cfg.StableScanInterval, "request_timeout", c.cfg.RequestTimeout)
	return nil
}

func (c *Coordinator) abort() {
	c.mu.Lock()
	c.state = stateStopped
	c.mu.Unlock()
	c.runCancel()
}

// Shutdown stops gracefully: no more takes, processors' ctx cancelled while
// renewals go on, wait (bounded by ctx) until every ProcessShard returned
// (final checkpoints written), then release every held lease so other
// workers take them at once. If ctx ends first, leases are still released
// (a late SaveCheckpoint gets ErrLeaseLost) and ctx's error is returned.
// After an abrupt stop (Start's ctx cancelled) it only waits for goroutines.
func (c *Coordinator) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.state != stateRunning {
		c.mu.Unlock()
		return nil
	}
	c.state = stateStopping
	abrupt := c.runCtx.Err() != nil
	c.mu.Unlock()

	c.loopCancel()
	c.loopWG.Wait() // no new processors after this
	c.procCancel()
	var err error
	procsDone := make(chan struct{})
	go func() { c.procWG.Wait(); close(procsDone) }()
	select {
	case <-procsDone:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown lease coordinator: processors still running: %w", ctx.Err())
	}
	c.runCancel()
	c.renewWG.Wait()

	if !abrupt {
		c.releaseAll(ctx)
	}
	c.mu.Lock()
	c.state = stateStopped
	left := slices.Concat(slices.Collect(maps.Values(c.held)), slices.Collect(maps.Values(c.handingOff)))
	c.mu.Unlock()
	for _, hl := range left { // abrupt stop, or shutdown cut short: stop their expiry timers too
		hl.markGone()
	}
	if err == nil {
		<-procsDone
	}
	c.log.Info("lease coordinator stopped", "abrupt", abrupt)
	return err
}

func (c *Coordinator) releaseAll(ctx context.Context) {
	// Release even when ctx has ended: handing leases over beats waiting
	// for them to expire.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, hl := range c.heldNow() {
		c.release(rctx, hl, "shutdown")
	}
}

// heldNow returns the leases held at this moment, for work done outside c.mu.
func (c *Coordinator) heldNow() []*heldLease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.held))
}

// release clears our ownership; afterwards the handle never writes.
func (c *Coordinator) release(ctx context.Context, hl *heldLease, why string) {
	hl.mu.Lock()
	if hl.gone.Load() {
		hl.mu.Unlock()
		return
	}
	err := c.tbl.release(ctx, hl.key, hl.counter, c.cfg.WorkerID)
	// A renewal cancelled at shutdown (or timed out) may have landed and
	// moved the counter; or a hand-off was asked meanwhile: check before
	// calling the lease lost.
	if isConditionalFailure(err) && c.reconcileLocked(ctx, hl) {
		if hl.handingTo != "" {
			err = c.tbl.handoffRelease(ctx, hl.key, c.cfg.WorkerID, hl.handingTo)
		} else {
			err = c.tbl.release(ctx, hl.key, hl.counter, c.cfg.WorkerID)
		}
	}
	handedTo := hl.handingTo
	gone := hl.markGone() // before unlocking: no write may slip in after ours
	hl.mu.Unlock()
	if !gone {
		return // expired meanwhile, already reported
	}
	c.forget(hl)
	switch {
	case err == nil && handedTo != "":
		c.cm.handoffs.WithLabelValues("giver", "clean").Inc()
		c.log.Info("lease handed off", "event", "lease_handed_off", "shard", hl.key, "to", handedTo, "reason", why)
	case err == nil:
		c.m.released.Inc()
		c.log.Info("lease released", "event", "lease_released", "shard", hl.key, "reason", why)
	case isConditionalFailure(err):
		c.m.conditionalFailure.WithLabelValues("release").Inc()
		c.m.lost.Inc()
		c.log.Warn("lease lost before release", "event", "lease_lost", "shard", hl.key, "reason", why)
	default:
		c.m.errors.WithLabelValues("release").Inc()
		c.log.Warn("release lease failed; it will expire", "event", "lease_release_failed", "shard", hl.key, "reason", why, "err", err)
	}
}

// loseLease drops a lease another worker changed (or that expired by our
// own clock): cancel its processor and close Lost at once, never write again.
func (c *Coordinator) loseLease(hl *heldLease, why string) {
	if !hl.markGone() {
		return
	}
	c.forget(hl)
	c.m.lost.Inc()
	c.log.Warn("lease lost", "event", "lease_lost", "shard", hl.key, "reason", why)
}

func (c *Coordinator) forget(hl *heldLease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[hl.key] == hl || c.handingOff[hl.key] == hl {
		delete(c.held, hl.key)
		delete(c.handingOff, hl.key)
		if hl.done != nil {
			c.prevDone[hl.key] = hl.done
		}
	}
	c.lastChange = time.Now()
	c.m.held.Set(float64(len(c.held))) // lastChange: the take loop scans fast for a while
}

// Ready reports whether the coordinator runs and its last table scan
// succeeded recently.
func (c *Coordinator) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateRunning || c.runCtx.Err() != nil || c.lastScanOK.IsZero() {
		return false
	}
	// Scans are StableScanInterval apart when nothing changes.
	return time.Since(c.lastScanOK) < c.cfg.StableScanInterval+max(c.cfg.FailoverTime, 3*c.cfg.TakeInterval)
}

// HeldLeases returns the keys of the leases this worker holds, sorted.
func (c *Coordinator) HeldLeases() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.held))
	for k := range c.held {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
