package lease

import "context"

// Processors: starts a held lease's processor once its parents are done.

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
				c.afterProcess(hl)
				return
			}
		}
		if hl.from != "" && !c.awaitHandoff(hl) {
			c.afterProcess(hl)
			return
		}
		if hl.ctx.Err() == nil {
			c.proc.ProcessShard(hl.ctx, hl.handle)
		}
		c.afterProcess(hl)
	}()
}

// afterProcess runs when a processor returned (or never ran). Handing the
// lease over: let the taker start. Otherwise, while we hold the lease,
// release it: at SHARD_END nobody needs it any more; else the processor
// gave up and the lease is retaken from its checkpoint on a later take cycle.
func (c *Coordinator) afterProcess(hl *heldLease) {
	hl.mu.Lock()
	if hl.handingTo != "" {
		ctx, cancel := context.WithTimeout(c.runCtx, c.cfg.RequestTimeout)
		c.finishHandoffLocked(ctx, hl)
		cancel()
		hl.mu.Unlock()
		return
	}
	gone, ended := hl.gone.Load(), hl.ended
	hl.mu.Unlock()
	if gone || c.procCtx.Err() != nil { // lost, or shutting down (Shutdown releases) or abrupt stop
		return
	}
	if hl.ctx.Err() != nil {
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
