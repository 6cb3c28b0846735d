package lease

import (
	"context"
	"sync"
	"time"
)

// Renewer: keeps held leases alive.

// renewParallelism bounds concurrent renewals: enough that a worker with
// hundreds of leases renews them all well within one request timeout.
const renewParallelism = 32

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

// renewAll renews every held lease in parallel: one slow or hanging call
// must not delay the others past their expiry.
func (c *Coordinator) renewAll(ctx context.Context) {
	sem := make(chan struct{}, renewParallelism)
	var wg sync.WaitGroup
	for _, hl := range c.heldNow() {
		select {
		case <-ctx.Done():
		case sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c.renew(ctx, hl)
			}()
		}
	}
	wg.Wait()
}

func (c *Coordinator) renew(ctx context.Context, hl *heldLease) {
	hl.mu.Lock()
	if hl.gone.Load() || hl.handingTo != "" {
		hl.mu.Unlock()
		return
	}
	sent := time.Now()
	err := c.tbl.renew(ctx, hl.key, hl.counter, c.cfg.WorkerID)
	if isConditionalFailure(err) && c.reconcileLocked(ctx, hl) {
		if hl.handingTo != "" { // a hand-off began: the lease is the taker's now
			c.finishIfIdleLocked(ctx, hl)
			hl.mu.Unlock()
			return
		}
		sent = time.Now()
		err = c.tbl.renew(ctx, hl.key, hl.counter, c.cfg.WorkerID)
	}
	noteUnsureLocked(hl, err)
	if err == nil && !hl.gone.Load() {
		hl.counter++
		c.provenLocked(hl, sent)
	}
	hl.mu.Unlock()
	switch {
	case err == nil:
		c.m.renewals.Inc()
	case isConditionalFailure(err):
		c.m.conditionalFailure.WithLabelValues("renew").Inc()
		c.loseLease(hl, "renewal refused: another worker changed the lease")
	case ctx.Err() != nil:
	default:
		// Throttled or timed out: keep trying; the expiry timer stops the
		// processor FailoverTime after the last renewal that got through.
		c.m.errors.WithLabelValues("renew").Inc()
		c.log.Warn("renew lease failed", "shard", hl.key, "throttled", isThrottle(err), "err", err)
	}
}
