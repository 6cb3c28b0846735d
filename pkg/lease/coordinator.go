package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
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
	prevDone   map[string]chan struct{} // processors of leases no longer held, by key
	observed   map[string]observation   // per lease: counter/owner and when first seen so
	known      map[string]Lease         // last scan, updated locally on SHARD_END
	lastScanOK time.Time
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
	c := &Coordinator{
		tbl:      table{db: db, name: cfg.TableName},
		lister:   lister,
		proc:     proc,
		cfg:      cfg,
		log:      log.With("table", cfg.TableName, "worker", cfg.WorkerID),
		rnd:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		syncNow:  make(chan struct{}, 1),
		takeNow:  make(chan struct{}, 1),
		held:     map[string]*heldLease{},
		prevDone: map[string]chan struct{}{},
		observed: map[string]observation{},
		known:    map[string]Lease{},
	}
	m, err := newMetrics(reg, c)
	if err != nil {
		return nil, fmt.Errorf("new lease coordinator: register metrics: %w", err)
	}
	c.m = m
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
	c.runCtx, c.runCancel = context.WithCancel(ctx)
	c.procCtx, c.procCancel = context.WithCancel(c.runCtx)
	c.mu.Unlock()

	if err := c.tbl.ensure(ctx, c.cfg.CreateTable); err != nil {
		c.m.errors.WithLabelValues("create_table").Inc()
		c.abort()
		return fmt.Errorf("start lease coordinator: %w", err)
	}
	if err := c.syncShards(ctx); err != nil {
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
	c.log.Info("lease coordinator started", "failover_time", c.cfg.FailoverTime, "take_interval", c.cfg.TakeInterval)
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
	c.mu.Unlock()
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
	if hl.lost {
		hl.mu.Unlock()
		return
	}
	hl.lost = true
	err := c.tbl.release(ctx, hl.key, hl.counter, c.cfg.WorkerID)
	hl.mu.Unlock()
	close(hl.lostCh)
	hl.cancel()
	c.forget(hl)
	switch {
	case err == nil:
		c.m.released.Inc()
		c.log.Info("lease released", "shard", hl.key, "reason", why)
	case isConditionalFailure(err):
		c.m.conditionalFailure.WithLabelValues("release").Inc()
		c.m.lost.Inc()
		c.log.Warn("lease lost before release", "shard", hl.key, "reason", why)
	default:
		c.m.errors.WithLabelValues("release").Inc()
		c.log.Warn("release lease failed; it will expire", "shard", hl.key, "reason", why, "err", err)
	}
}

// loseLease drops a lease another worker changed (or that we could not
// renew in time): cancel its processor at once, never write again.
func (c *Coordinator) loseLease(hl *heldLease, why string) {
	hl.mu.Lock()
	if hl.lost {
		hl.mu.Unlock()
		return
	}
	hl.lost = true
	hl.mu.Unlock()
	close(hl.lostCh)
	hl.cancel()
	c.forget(hl)
	c.m.lost.Inc()
	c.log.Warn("lease lost", "shard", hl.key, "reason", why)
}

func (c *Coordinator) forget(hl *heldLease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[hl.key] == hl {
		delete(c.held, hl.key)
		if hl.done != nil {
			c.prevDone[hl.key] = hl.done
		}
	}
	c.m.held.Set(float64(len(c.held)))
}

// Ready reports whether the coordinator runs and its last table scan
// succeeded recently.
func (c *Coordinator) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateRunning || c.runCtx.Err() != nil || c.lastScanOK.IsZero() {
		return false
	}
	return time.Since(c.lastScanOK) < max(c.cfg.FailoverTime, 3*c.cfg.TakeInterval)
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

// --- renewals ---

func (c *Coordinator) renewLoop(ctx context.Context) {
	defer c.renewWG.Done()
	t := time.NewTicker(c.cfg.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.renewAll(ctx)
		}
	}
}

func (c *Coordinator) renewAll(ctx context.Context) {
	for _, hl := range c.heldNow() {
		if ctx.Err() != nil {
			return
		}
		c.renew(ctx, hl)
	}
}

func (c *Coordinator) renew(ctx context.Context, hl *heldLease) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	defer cancel()
	hl.mu.Lock()
	if hl.lost {
		hl.mu.Unlock()
		return
	}
	err := c.tbl.renew(rctx, hl.key, hl.counter, c.cfg.WorkerID)
	if isConditionalFailure(err) && c.reconcileLocked(rctx, hl) {
		err = c.tbl.renew(rctx, hl.key, hl.counter, c.cfg.WorkerID)
	}
	noteUnsureLocked(hl, err)
	if err == nil {
		hl.counter++
		hl.lastRenew = time.Now()
	}
	sinceRenew := time.Since(hl.lastRenew)
	hl.mu.Unlock()
	switch {
	case err == nil:
		c.m.renewals.Inc()
	case isConditionalFailure(err):
		c.m.conditionalFailure.WithLabelValues("renew").Inc()
		c.loseLease(hl, "renewal refused: another worker changed the lease")
	case ctx.Err() != nil:
	default:
		c.m.errors.WithLabelValues("renew").Inc()
		c.log.Warn("renew lease failed", "shard", hl.key, "err", err)
		// Others count expiry from when they saw our last renewal; give up
		// a renewal period early so we stop before they may take it.
		if sinceRenew > c.cfg.FailoverTime-c.cfg.RenewInterval {
			c.loseLease(hl, "renewals failing for "+sinceRenew.Round(time.Millisecond).String())
		}
	}
}

// --- taking ---

func (c *Coordinator) takeLoop(ctx context.Context) {
	defer c.loopWG.Done()
	t := time.NewTicker(c.cfg.TakeInterval)
	defer t.Stop()
	for {
		c.takeCycle(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.takeNow:
		}
	}
}

func (c *Coordinator) takeCycle(ctx context.Context) {
	leases, err := c.tbl.scan(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.m.errors.WithLabelValues("scan").Inc()
			c.log.Warn("scan lease table failed", "err", err)
		}
		return
	}
	now := time.Now()
	me := c.cfg.WorkerID

	c.mu.Lock()
	c.lastScanOK = now
	known := make(map[string]Lease, len(leases))
	observed := make(map[string]observation, len(leases))
	for _, l := range leases {
		known[l.Key] = l
		o, ok := c.observed[l.Key]
		if !ok || o.counter != l.Counter || o.owner != l.Owner {
			o = observation{counter: l.Counter, owner: l.Owner, since: now}
		}
		observed[l.Key] = o
	}
	// Keep a SHARD_END we wrote ourselves if the scan raced with it.
	for k, l := range c.known {
		if l.Ended() {
			if s, ok := known[k]; ok && !s.Ended() && c.held[k] != nil {
				known[k] = l
			}
		}
	}
	c.known, c.observed = known, observed

	v := view{self: me, expired: map[string]bool{}, held: map[string]bool{},
		maxHeld: c.cfg.MaxLeasesPerWorker, maxSteal: c.cfg.MaxLeasesToSteal}
	var stolen []*heldLease
	for _, l := range leases {
		if hl, ok := c.held[l.Key]; ok {
			if l.Owner != me {
				stolen = append(stolen, hl)
			} else if !l.Ended() {
				v.held[l.Key] = true
			}
		}
		if l.Ended() {
			continue
		}
		v.leases = append(v.leases, l)
		if l.Owner == "" || now.Sub(observed[l.Key].since) > c.cfg.FailoverTime {
			v.expired[l.Key] = true
		}
	}
	for _, hl := range stolen {
		delete(v.expired, hl.key) // ours until we notice; don't count it as takeable
	}
	take, steal, _ := plan(v, c.rnd)
	c.mu.Unlock()

	for _, hl := range stolen {
		c.loseLease(hl, "table shows another owner")
	}
	for _, l := range take {
		c.takeLease(ctx, l, false)
	}
	for _, l := range steal {
		c.takeLease(ctx, l, true)
	}
	c.startReady()
}

func (c *Coordinator) takeLease(ctx context.Context, l Lease, steal bool) {
	op := "take"
	if steal {
		op = "steal"
	}
	nl, err := c.tbl.take(ctx, l, c.cfg.WorkerID)
	switch {
	case isConditionalFailure(err):
		c.m.conditionalFailure.WithLabelValues(op).Inc()
		return
	case err != nil:
		if ctx.Err() == nil {
			c.m.errors.WithLabelValues(op).Inc()
			c.log.Warn("take lease failed", "shard", l.Key, "steal", steal, "err", err)
		}
		return
	}
	now := time.Now()
	hl := &heldLease{key: nl.Key, lease: nl, lostCh: make(chan struct{}), counter: nl.Counter, lastRenew: now, lastCheckpoint: now}
	hl.handle = &Handle{c: c, h: hl}
	c.mu.Lock()
	hl.ctx, hl.cancel = context.WithCancel(c.procCtx)
	c.held[nl.Key] = hl
	c.known[nl.Key] = nl
	c.m.held.Set(float64(len(c.held)))
	c.mu.Unlock()
	if steal {
		c.m.stolen.Inc()
	} else {
		c.m.taken.Inc()
	}
	c.log.Info("lease acquired", "shard", nl.Key, "from", l.Owner, "steal", steal, "checkpoint", nl.Checkpoint)
}

// startReady starts the processor of every held lease whose parents are done.
func (c *Coordinator) startReady() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procCtx.Err() != nil {
		return
	}
	for _, hl := range c.held {
		if hl.done == nil && c.parentsDoneLocked(hl.lease) {
			c.startLocked(hl)
		}
	}
}

// parentsDoneLocked: every parent's lease is at SHARD_END or gone. Shard
// sync creates parents' leases before their children's, so a parent without
// a lease is finished (deleted, or never needed one).
func (c *Coordinator) parentsDoneLocked(l Lease) bool {
	for _, p := range l.ParentShardIDs {
		if pl, ok := c.known[p]; ok && !pl.Ended() {
			return false
		}
	}
	return true
}

func (c *Coordinator) startLocked(hl *heldLease) {
	hl.done = make(chan struct{})
	prev := c.prevDone[hl.key]
	c.procWG.Add(1)
	go func() {
		defer c.procWG.Done()
		defer close(hl.done)
		if prev != nil { // a processor of an earlier hold of this shard is still finishing
			select {
			case <-prev:
			case <-hl.ctx.Done():
				return
			}
		}
		if hl.ctx.Err() != nil {
			return
		}
		c.proc.ProcessShard(hl.ctx, hl.handle)
		c.afterProcess(hl)
	}()
}

// afterProcess releases a lease whose processor returned while we hold it:
// at SHARD_END nobody needs it any more; otherwise the processor gave up and
// the lease is retaken from its checkpoint on a later take cycle.
func (c *Coordinator) afterProcess(hl *heldLease) {
	if c.procCtx.Err() != nil { // shutting down (Shutdown releases) or abrupt stop
		return
	}
	hl.mu.Lock()
	lost, ended := hl.lost, hl.ended
	hl.mu.Unlock()
	if lost {
		return
	}
	ctx, cancel := context.WithTimeout(c.runCtx, c.cfg.RenewInterval)
	defer cancel()
	if ended {
		c.release(ctx, hl, "shard ended")
		return
	}
	// No kick: the next take cycle retakes it, a TakeInterval of backoff for
	// a processor that keeps failing.
	c.release(ctx, hl, "processor returned before shard end")
}

func (c *Coordinator) noteShardEnded(key string, children []string) {
	c.mu.Lock()
	if l, ok := c.known[key]; ok {
		l.Checkpoint = ShardEnd
		l.ChildShardIDs = dedupe(children)
		c.known[key] = l
	}
	c.mu.Unlock()
	kick(c.syncNow)
}

// --- shard sync ---

func (c *Coordinator) syncLoop(ctx context.Context) {
	defer c.loopWG.Done()
	t := time.NewTicker(c.cfg.ShardSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.syncNow:
		}
		if err := c.syncShards(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("shard sync failed", "err", err)
		}
		kick(c.takeNow)
	}
}

// syncShards creates leases for listed shards that have none (parents
// before children) and deletes SHARD_END leases of shards the stream no
// longer retains once their children have leases.
func (c *Coordinator) syncShards(ctx context.Context) error {
	shards, err := c.lister.ListShards(ctx)
	if err != nil {
		c.m.errors.WithLabelValues("list_shards").Inc()
		return fmt.Errorf("sync shards: list shards: %w", err)
	}
	leases, err := c.tbl.scan(ctx)
	if err != nil {
		c.m.errors.WithLabelValues("scan").Inc()
		return fmt.Errorf("sync shards: %w", err)
	}
	leased := make(map[string]Lease, len(leases))
	for _, l := range leases {
		leased[l.Key] = l
	}
	listed := make(map[string]Shard, len(shards))
	for _, s := range shards {
		listed[s.ID] = s
	}

	// anchors: leases that existed before this sync, and those created now
	// for their descendants. A new shard descending from an anchor starts
	// at TRIM_HORIZON; others at InitialPosition (a fresh LATEST start must
	// not replay the children of closed shards it also just leased at LATEST).
	anchors := maps.Clone(leased)
	before := maps.Clone(leased)
	kids := map[string][]string{}
	for _, s := range shards {
		for _, p := range s.ParentShardIDs {
			kids[p] = append(kids[p], s.ID)
		}
	}
	var errs []error
	failed := map[string]bool{}
	for _, s := range parentsFirst(shards) {
		if _, ok := leased[s.ID]; ok {
			continue
		}
		if hasLeasedDescendant(s.ID, kids, before, map[string]bool{}) {
			// Finished: a descendant is already leased (the Java KCL deletes
			// parent leases while the stream still retains the shard).
			continue
		}
		if slices.ContainsFunc(s.ParentShardIDs, func(p string) bool { return failed[p] }) {
			failed[s.ID] = true // its parent has no lease yet; creating it now could let it run first
			continue
		}
		cp := c.cfg.InitialPosition
		descendant := descendsFromLeased(s.ID, listed, anchors, map[string]bool{})
		if descendant {
			cp = TrimHorizon // a leased ancestor ends where this shard begins: read it all
		}
		created, err := c.tbl.create(ctx, s, cp)
		switch {
		case err != nil:
			failed[s.ID] = true
			c.m.errors.WithLabelValues("create").Inc()
			errs = append(errs, fmt.Errorf("create lease %s: %w", s.ID, err))
			continue
		case created:
			c.log.Info("lease created", "shard", s.ID, "checkpoint", cp, "parents", s.ParentShardIDs)
		default:
			c.m.conditionalFailure.WithLabelValues("create").Inc() // another worker created it
		}
		leased[s.ID] = Lease{Key: s.ID, Checkpoint: cp, ParentShardIDs: s.ParentShardIDs}
		if descendant {
			anchors[s.ID] = leased[s.ID]
		}
	}

	// An empty listing is never a real stream (it has an open shard): don't
	// read it as "every shard expired".
	if len(shards) > 0 {
		for _, l := range leases {
			if !l.Ended() || listed[l.Key].ID != "" {
				continue
			}
			if !childrenLeased(l, leased, listed) {
				continue
			}
			err := c.tbl.deleteEnded(ctx, l)
			switch {
			case err == nil:
				delete(leased, l.Key)
				c.log.Info("finished lease deleted: shard no longer in the stream", "shard", l.Key)
			case isConditionalFailure(err):
				c.m.conditionalFailure.WithLabelValues("delete").Inc()
			default:
				c.m.errors.WithLabelValues("delete").Inc()
				errs = append(errs, fmt.Errorf("delete lease %s: %w", l.Key, err))
			}
		}
	}

	c.mu.Lock()
	c.lastScanOK = time.Now()
	c.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sync shards: %w", err)
	}
	c.m.shardSyncs.Inc()
	return nil
}

// childrenLeased: every child of an ended lease (from childShardIds, or
// leases naming it as parent) has a lease, or is gone from the stream too
// (then no lease can ever be made for it, and keeping the parent helps no one).
func childrenLeased(l Lease, leased map[string]Lease, listed map[string]Shard) bool {
	for _, ch := range l.ChildShardIDs {
		if _, ok := leased[ch]; !ok && listed[ch].ID != "" {
			return false
		}
	}
	return true
}

// hasLeasedDescendant: some descendant of shard id has a lease.
func hasLeasedDescendant(id string, kids map[string][]string, leased map[string]Lease, seen map[string]bool) bool {
	if seen[id] {
		return false
	}
	seen[id] = true
	for _, k := range kids[id] {
		if _, ok := leased[k]; ok {
			return true
		}
		if hasLeasedDescendant(k, kids, leased, seen) {
			return true
		}
	}
	return false
}

// descendsFromLeased: some ancestor of shard id (through listed shards) has
// a lease.
func descendsFromLeased(id string, listed map[string]Shard, leased map[string]Lease, seen map[string]bool) bool {
	if seen[id] {
		return false
	}
	seen[id] = true
	for _, p := range listed[id].ParentShardIDs {
		if _, ok := leased[p]; ok {
			return true
		}
		if _, ok := listed[p]; ok && descendsFromLeased(p, listed, leased, seen) {
			return true
		}
	}
	return false
}

// parentsFirst orders shards so every listed parent precedes its children.
func parentsFirst(shards []Shard) []Shard {
	byID := make(map[string]Shard, len(shards))
	for _, s := range shards {
		byID[s.ID] = s
	}
	sorted := slices.Clone(shards)
	slices.SortFunc(sorted, func(a, b Shard) int { return strings.Compare(a.ID, b.ID) })
	out := make([]Shard, 0, len(shards))
	done := map[string]bool{}
	var visit func(s Shard)
	visit = func(s Shard) {
		if done[s.ID] {
			return
		}
		done[s.ID] = true
		for _, p := range s.ParentShardIDs {
			if ps, ok := byID[p]; ok {
				visit(ps)
			}
		}
		out = append(out, s)
	}
	for _, s := range sorted {
		visit(s)
	}
	return out
}
