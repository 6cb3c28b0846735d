package lease

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Shard sync: creates leases for new shards, cleans up finished ones.

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
		err := c.syncShards(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("shard sync failed", "err", err)
		}
		// A scan right away only when the table changed (or the sync
		// failed): a stable fleet keeps its stable scan cadence.
		if c.syncChanged.Swap(false) || err != nil {
			kick(c.takeNow)
		}
	}
}

// syncShards creates leases for listed shards that have none (parents
// before children) and deletes the leases planCleanup picks: finished ones
// whose children started, and those of shards the stream no longer has.
func (c *Coordinator) syncShards(ctx context.Context) error {
	shards, err := c.lister.ListShards(ctx)
	if err != nil {
		c.m.errors.WithLabelValues("list_shards").Inc()
		return fmt.Errorf("sync shards: list shards: %w", err)
	}
	// The take loop's last scan serves when it is from its current cadence:
	// one scan fewer. Staleness is safe, creates and deletes are conditional.
	leases, ok := c.recentLeases(max(c.cfg.TakeInterval, c.cfg.StableScanInterval*6/5))
	if !ok {
		if leases, err = c.tbl.scan(ctx); err != nil {
			c.m.errors.WithLabelValues("scan").Inc()
			return fmt.Errorf("sync shards: %w", err)
		}
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
			c.syncChanged.Store(true)
			c.log.Info("lease created", "shard", s.ID, "checkpoint", cp, "parents", s.ParentShardIDs)
		default:
			c.m.conditionalFailure.WithLabelValues("create").Inc() // another worker created it
		}
		leased[s.ID] = Lease{Key: s.ID, Checkpoint: cp, ParentShardIDs: s.ParentShardIDs}
		if descendant {
			anchors[s.ID] = leased[s.ID]
		}
	}

	// An empty listing is never a real stream (it has an open shard):
	// planCleanup then deletes nothing.
	for _, d := range planCleanup(leases, leased, listed, kids, c.idle) {
		err := c.deleteLease(ctx, d.lease)
		switch {
		case err == nil:
			c.syncChanged.Store(true)
			delete(leased, d.lease.Key)
			c.log.Info("lease deleted", "shard", d.lease.Key, "reason", d.why, "checkpoint", d.lease.Checkpoint)
		case isConditionalFailure(err):
			c.m.conditionalFailure.WithLabelValues("delete").Inc()
		default:
			c.m.errors.WithLabelValues("delete").Inc()
			errs = append(errs, fmt.Errorf("delete lease %s: %w", d.lease.Key, err))
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

// idle: nobody else reads the lease: unowned, held here (our processor
// cannot read a shard the stream no longer has either), or its counter has
// not moved for FailoverTime by this worker's clock (the take loop's
// observations).
func (c *Coordinator) idle(l Lease) bool {
	if l.Owner == "" {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hl := c.held[l.Key]; hl != nil {
		return true
	}
	o, ok := c.observed[l.Key]
	return ok && o.counter == l.Counter && o.owner == l.Owner && time.Since(o.since) > c.cfg.FailoverTime
}

// deleteLease deletes l if unchanged. A lease held here is deleted at the
// counter we hold it at (renewals move it under us), and then dropped.
func (c *Coordinator) deleteLease(ctx context.Context, l Lease) error {
	c.mu.Lock()
	hl := c.held[l.Key]
	c.mu.Unlock()
	if hl == nil {
		return c.tbl.deleteUnchanged(ctx, l)
	}
	hl.mu.Lock()
	if hl.gone.Load() {
		hl.mu.Unlock()
		return c.tbl.deleteUnchanged(ctx, l)
	}
	l.Owner, l.Counter = c.cfg.WorkerID, hl.counter
	err := c.tbl.deleteUnchanged(ctx, l)
	hl.mu.Unlock()
	if err == nil {
		c.loseLease(hl, "lease deleted: the stream no longer has the shard")
	}
	return err
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
