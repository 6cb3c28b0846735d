package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Processor consumes the shard of a held lease.
type Processor interface {
	// ProcessShard runs in its own goroutine once this worker holds the lease
	// and every parent shard has reached SHARD_END (or is gone from the table
	// and the stream). ctx is cancelled when the lease is lost, handed over
	// to another worker, or the coordinator shuts down: stop fetching,
	// finish in-flight work (final SaveCheckpoint), and return. Lost closes
	// when writes are no longer allowed: stop at once. A hand-off leaves
	// about failover_time minus two renew intervals for the final
	// checkpoint. Returning without ShardEnded while the lease is held
	// releases it, so it is taken again (by any worker) from its last
	// checkpoint after about one take interval.
	ProcessShard(ctx context.Context, h *Handle)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, h *Handle)

// ProcessShard calls f.
func (f ProcessorFunc) ProcessShard(ctx context.Context, h *Handle) { f(ctx, h) }

// heldLease is a lease this worker holds.
type heldLease struct {
	key    string
	handle *Handle
	ctx    context.Context // the processor's
	cancel context.CancelFunc
	lostCh chan struct{}
	// Coordinator.mu: lease as written by our take (checkpoint at
	// acquisition; for a hand-off, re-read once the old owner let go), and
	// done, closed when the processor goroutine exits (nil until started).
	lease Lease
	done  chan struct{}
	// from: the owner we asked for a hand-off; until it lets go (or
	// FailoverTime after takenAt) the processor does not start.
	from    string
	takenAt time.Time

	// gone: lost, released, handed over or expired; lostCh is closed and
	// the handle never writes again. Atomic so the expiry timer can stop a
	// processor while a write hangs under mu.
	gone   atomic.Bool
	expiry *time.Timer // fires FailoverTime after the last proven hold

	mu             sync.Mutex // serializes writes to this lease; guards below
	counter        int64
	lastRenew      time.Time // when the last successful write was sent
	lastCheckpoint time.Time
	ended          bool // SHARD_END written
	// unsure: a write failed without an answer (timeout), so it may have
	// landed and moved the counter; a refusal is then checked, not believed.
	unsure bool
	// handingTo: another worker asked for the lease (leaseOwner = it,
	// checkpointOwner = us); our processor settles and checkpoints under a
	// checkpointOwner condition, then we let go.
	handingTo string
}

// provenLocked records a successful conditional write sent at sent: others
// count the lease's expiry from when they see it, which is after it was
// sent, so expiring FailoverTime after sent stops us before anyone may
// take the lease, whatever the table says meanwhile.
func (c *Coordinator) provenLocked(hl *heldLease, sent time.Time) {
	hl.lastRenew = sent
	if hl.expiry != nil {
		hl.expiry.Reset(time.Until(sent.Add(c.cfg.FailoverTime)))
	}
}

// markGone flips the lease to gone exactly once; true for the caller that did.
func (hl *heldLease) markGone() bool {
	if !hl.gone.CompareAndSwap(false, true) {
		return false
	}
	if hl.expiry != nil {
		hl.expiry.Stop()
	}
	close(hl.lostCh)
	hl.cancel()
	return true
}

// Handle is a processor's grip on its lease.
type Handle struct {
	c *Coordinator
	h *heldLease
}

// ShardID is the lease key.
func (h *Handle) ShardID() string { return h.h.key }

// Checkpoint returns the checkpoint at acquisition: a sequence number or
// TRIM_HORIZON, LATEST, AT_TIMESTAMP (or SHARD_END).
func (h *Handle) Checkpoint() (seq string, sub int64) {
	return h.h.lease.Checkpoint, h.h.lease.CheckpointSubSequenceNumber
}

// Lease returns the lease as it was at acquisition (after a hand-off: as
// the previous owner left it).
func (h *Handle) Lease() Lease { return h.h.lease }

// Lost is closed once the lease is no longer held (lost, expired by this
// worker's clock, released at shutdown, or handed over): stop at once;
// writes through the handle then return ErrLeaseLost. A hand-off to another
// worker first cancels the processor's ctx only, so it settles and writes
// its final checkpoint.
func (h *Handle) Lost() <-chan struct{} { return h.h.lostCh }

// SaveCheckpoint records seq as processed: a write conditional on this
// worker still holding the lease at the counter it knows. ErrLeaseLost when
// it does not (nothing is written, and the processor's ctx is cancelled).
func (h *Handle) SaveCheckpoint(ctx context.Context, seq string) error {
	return h.SaveCheckpointAt(ctx, seq, 0)
}

// SaveCheckpointAt is SaveCheckpoint with a sub-sequence number: the last
// processed sub-record of a KPL-aggregated record (0 for plain records), as
// the Java KCL writes checkpointSubSequenceNumber.
func (h *Handle) SaveCheckpointAt(ctx context.Context, seq string, sub int64) error {
	if sub < 0 {
		return errors.New("save checkpoint: negative sub-sequence number")
	}
	if seq == "" {
		return errors.New("save checkpoint: empty sequence number")
	}
	if seq == ShardEnd {
		return errors.New("save checkpoint: use ShardEnded for SHARD_END")
	}
	return h.c.writeCheckpoint(ctx, h.h, seq, sub, nil)
}

// ShardEnded checkpoints SHARD_END with the child shard ids (from the last
// GetRecords of the closed shard) and triggers a shard sync so the children
// get leases and start at once. The processor should then return; the lease
// is released when it does.
func (h *Handle) ShardEnded(ctx context.Context, childShardIDs []string) error {
	if err := h.c.writeCheckpoint(ctx, h.h, ShardEnd, 0, childShardIDs); err != nil {
		return err
	}
	h.c.noteShardEnded(h.h.key, childShardIDs)
	return nil
}

func (c *Coordinator) writeCheckpoint(ctx context.Context, hl *heldLease, seq string, sub int64, children []string) error {
	op := "checkpoint"
	if seq == ShardEnd {
		op = "shard_end"
	}
	hl.mu.Lock()
	if hl.gone.Load() {
		hl.mu.Unlock()
		return fmt.Errorf("write checkpoint for %s: %w", hl.key, ErrLeaseLost)
	}
	if hl.ended { // never move a finished shard's checkpoint back
		hl.mu.Unlock()
		return fmt.Errorf("write checkpoint for %s: %w", hl.key, ErrShardEnded)
	}
	sent := time.Now()
	err := c.checkpointLocked(ctx, hl, seq, sub, children)
	if isConditionalFailure(err) && c.reconcileLocked(ctx, hl) {
		sent = time.Now()
		err = c.checkpointLocked(ctx, hl, seq, sub, children)
	}
	noteUnsureLocked(hl, err)
	if err == nil && !hl.gone.Load() {
		hl.lastCheckpoint = time.Now()
		if hl.handingTo == "" {
			hl.counter++
			c.provenLocked(hl, sent) // a conditional write proves we hold it
		} // during a hand-off the lease is the taker's: the deadline stays
		hl.ended = hl.ended || seq == ShardEnd
	}
	hl.mu.Unlock()
	switch {
	case err == nil:
		c.m.checkpoints.Inc()
		return nil
	case isConditionalFailure(err):
		c.m.conditionalFailure.WithLabelValues(op).Inc()
		c.loseLease(hl, "checkpoint write refused")
		return fmt.Errorf("write checkpoint for %s: %w", hl.key, ErrLeaseLost)
	default:
		c.m.errors.WithLabelValues(op).Inc()
		return fmt.Errorf("write checkpoint for %s: %w", hl.key, err)
	}
}

// checkpointLocked writes as holder, or as checkpointOwner during a hand-off.
func (c *Coordinator) checkpointLocked(ctx context.Context, hl *heldLease, seq string, sub int64, children []string) error {
	if hl.handingTo != "" {
		return c.tbl.handoffCheckpoint(ctx, hl.key, c.cfg.WorkerID, hl.handingTo, seq, sub, children)
	}
	return c.tbl.checkpoint(ctx, hl.key, hl.counter, c.cfg.WorkerID, seq, sub, children)
}

// noteUnsureLocked records whether the last write's fate is unknown.
func noteUnsureLocked(hl *heldLease, err error) {
	switch {
	case err == nil, isConditionalFailure(err):
		hl.unsure = false
	default:
		hl.unsure = true
	}
}

// reconcileLocked runs after a refused write and re-reads the lease
// (strongly consistent). Two refusals are not losses:
//   - an earlier write timed out but landed: the counter moved under our own
//     name; adopt it so the caller can retry, instead of dropping the shard
//     and re-delivering everything since the last checkpoint;
//   - another worker asked for a hand-off (leaseOwner = it, checkpointOwner =
//     us): the processor is told to settle, and writes go on under the
//     checkpointOwner condition until we let go.
//
// true: retry the write (as checkpointOwner if a hand-off began).
func (c *Coordinator) reconcileLocked(ctx context.Context, hl *heldLease) bool {
	l, cpOwner, found, err := c.tbl.getWithCheckpointOwner(ctx, hl.key)
	if err != nil || !found {
		return false
	}
	me := c.cfg.WorkerID
	switch {
	case l.Owner == me && hl.unsure && l.Counter > hl.counter:
		c.log.Info("lease counter moved by our own unanswered write; keeping the lease", "shard", hl.key,
			"expected", hl.counter, "found", l.Counter)
		hl.counter = l.Counter
		hl.unsure = false
		return true
	case l.Owner != me && l.Owner != "" && cpOwner == me && hl.handingTo == "":
		c.beginHandoffLocked(hl, l.Owner)
		return true
	}
	return false
}
