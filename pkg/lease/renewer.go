package lease

import (
	"context"
	"time"
)

// Renewer: keeps held leases alive.

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
