package lease

import (
	"context"
	"time"
)

// Taker: takes expired and unowned leases, steals for balance.

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
