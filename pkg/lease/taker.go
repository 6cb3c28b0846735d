package lease

import (
	"context"
	"slices"
	"time"
)

// Taker: adopts leases left in our name, takes expired and unowned ones,
// asks for hand-offs to balance.
//
// Scans are eventually consistent and adaptive: every TakeInterval while
// there is something to do (just started, below target with something to
// take, a lease of ours changed hands lately, a hand-off under way, another
// worker's lease missed its renewal), every
// StableScanInterval (jittered) when balanced and stable, and backing off up
// to StableScanInterval after failures (throttling), while renewals go on.

func (c *Coordinator) takeLoop(ctx context.Context) {
	defer c.loopWG.Done()
	var backoff time.Duration
	cadence := "fast"
	for {
		c.cm.scans.WithLabelValues(cadence).Inc()
		busy, err := c.takeCycle(ctx)
		var delay time.Duration
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 2*c.cfg.TakeInterval), c.cfg.StableScanInterval)
			delay, cadence = backoff, "backoff"
		case busy:
			backoff = 0
			delay, cadence = c.cfg.TakeInterval, "fast"
		default:
			backoff = 0
			d := c.cfg.StableScanInterval
			// Jitter spreads a fleet's scans that started together; upward
			// only, so a stable worker never scans more often than the Java
			// KCL's taker at the same failover time.
			delay, cadence = d+time.Duration(c.rnd.Int64N(int64(d/5)+1)), "stable"
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.takeNow:
			t.Stop()
		}
	}
}

// takeCycle scans once and acts; busy asks for the next scan soon.
func (c *Coordinator) takeCycle(ctx context.Context) (busy bool, err error) {
	leases, handing, err := c.tbl.listLeases(ctx)
	if err == nil {
		leases, err = c.tbl.addMissingParents(ctx, leases, c.goneParents)
	}
	if err != nil {
		if ctx.Err() == nil {
			c.m.errors.WithLabelValues("scan").Inc()
			c.log.Warn("scan lease table failed", "throttled", isThrottle(err), "err", err)
		}
		return false, err
	}
	now := time.Now()
	me := c.cfg.WorkerID
	fo := c.cfg.FailoverTime

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

	// Until we have watched the table for FailoverTime we cannot tell an
	// expired lease from a live one: take only unowned ones, steal nothing,
	// or a replacement for a dead worker would take live workers' leases
	// before the dead one's expire.
	watching := now.Sub(c.startedAt) < fo
	v := view{self: me, expired: map[string]bool{}, held: map[string]bool{},
		maxHeld: c.cfg.MaxLeasesPerWorker, maxSteal: c.cfg.MaxLeasesToSteal, watching: watching}
	var suspect []*heldLease
	var adopt, stale []Lease
	suspicious := false
	for _, l := range leases {
		hl, held := c.held[l.Key]
		_, givingIt := c.handingOff[l.Key]
		if cpo := handing[l.Key]; cpo == me && !givingIt && !held && l.Owner != me && l.Owner != "" {
			// A hand-off an earlier process with our worker id never
			// finished: its processor is gone, let the taker start now.
			stale = append(stale, l)
		}
		switch {
		case held && l.Owner != me:
			suspect = append(suspect, hl) // stale scan, hand-off request, or lost: re-read
		case held && !l.Ended():
			v.held[l.Key] = true
		case !held && !givingIt && l.Owner == me && !l.Ended():
			// In our name but not held: an earlier process with this worker
			// id (a restarted container). Its last checkpoint is the last
			// one written: resume from it now rather than wait for expiry.
			adopt = append(adopt, l)
			v.held[l.Key] = true
		}
		if l.Ended() {
			continue
		}
		v.leases = append(v.leases, l)
		if handing[l.Key] != "" && l.Owner != me {
			v.handingOff = append(v.handingOff, l.Key)
		}
		age := now.Sub(observed[l.Key].since)
		if l.Owner == "" || age > fo {
			v.expired[l.Key] = true
		}
		// Its owner missed a renewal: keep scanning fast until the lease
		// expires (and is taken), so a crash is noticed within about a
		// failover time whenever this worker already scans fast.
		if l.Owner != me && l.Owner != "" && age > c.cfg.RenewInterval+c.cfg.TakeInterval && age <= fo+2*c.cfg.TakeInterval {
			suspicious = true
		}
	}
	for _, hl := range suspect {
		delete(v.expired, hl.key) // ours until we know better; don't count it as takeable
	}
	for _, l := range adopt {
		delete(v.expired, l.Key)
	}
	take, steal, target := plan(v, c.rnd)
	busy = len(take)+len(steal)+len(adopt)+len(suspect) > 0 ||
		(watching && len(v.held) < target) ||
		now.Sub(c.startedAt) < 2*fo ||
		now.Sub(c.lastChange) < fo ||
		len(c.handingOff) > 0 ||
		suspicious
	c.mu.Unlock()

	for _, hl := range suspect {
		c.verify(ctx, hl)
	}
	for _, l := range stale {
		if err := c.tbl.handoffRelease(ctx, l.Key, me, l.Owner); err == nil {
			c.log.Info("stale hand-off of an earlier run finished", "event", "lease_handed_off", "shard", l.Key, "to", l.Owner)
		}
	}
	for _, l := range adopt {
		c.takeLease(ctx, l, false)
	}
	for _, l := range take {
		c.takeLease(ctx, l, false)
	}
	for _, l := range steal {
		c.takeLease(ctx, l, true)
	}
	c.startReady()
	return busy, nil
}

// takeLease takes l (conditional on the counter and owner read); steal asks
// its owner for a hand-off instead, and the processor waits for it.
func (c *Coordinator) takeLease(ctx context.Context, l Lease, steal bool) {
	op := "take"
	if steal {
		op = "steal"
	}
	sent := time.Now()
	var nl Lease
	var err error
	if steal {
		nl, err = c.tbl.handoffTake(ctx, l, c.cfg.WorkerID)
	} else {
		nl, err = c.tbl.take(ctx, l, c.cfg.WorkerID)
	}
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
	hl := &heldLease{key: nl.Key, lease: nl, lostCh: make(chan struct{}), counter: nl.Counter, lastRenew: sent, lastCheckpoint: now}
	if steal {
		hl.from, hl.takenAt = l.Owner, sent
	}
	hl.handle = &Handle{c: c, h: hl}
	c.mu.Lock()
	hl.ctx, hl.cancel = context.WithCancel(c.procCtx)
	hl.expiry = time.AfterFunc(time.Until(sent.Add(c.cfg.FailoverTime)), func() {
		c.mu.Lock()
		//lint:ignore SA2001 the empty section orders this callback after hl's setup under c.mu (race detector)
		c.mu.Unlock()
		c.loseLease(hl, "expired by this worker's clock: no renewal got through for "+c.cfg.FailoverTime.String())
	})
	c.held[nl.Key] = hl
	c.known[nl.Key] = nl
	c.lastChange = now
	c.m.held.Set(float64(len(c.held)))
	c.mu.Unlock()
	if steal {
		c.m.stolen.Inc()
	} else {
		c.m.taken.Inc()
	}
	c.log.Info("lease acquired", "event", "lease_acquired", "shard", nl.Key, "from", l.Owner, "handoff", steal,
		"adopted", l.Owner == c.cfg.WorkerID, "checkpoint", nl.Checkpoint)
}

// recentLeases returns the take loop's last scan (as updated by our own
// SHARD_END writes) when it is at most maxAge old, so shard sync can reuse
// it instead of scanning again.
func (c *Coordinator) recentLeases(maxAge time.Duration) ([]Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastScanOK.IsZero() || time.Since(c.lastScanOK) > maxAge || len(c.known) == 0 {
		return nil, false
	}
	out := make([]Lease, 0, len(c.known))
	for _, l := range c.known {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lease) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out, true
}
