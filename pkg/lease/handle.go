package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Processor consumes the shard of a held lease.
type Processor interface {
	// ProcessShard runs in its own goroutine once this worker holds the lease
	// and every parent shard has reached SHARD_END (or is gone from the table
	// and the stream). ctx is cancelled when the lease is lost or the
	// coordinator shuts down: stop fetching, finish in-flight work (final
	// SaveCheckpoint), and return. Returning without ShardEnded while the
	// lease is held releases it, so it is taken again (by any worker) from
	// its last checkpoint after about one take interval.
	ProcessShard(ctx context.Context, h *Handle)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, h *Handle)

// ProcessShard calls f.
func (f ProcessorFunc) ProcessShard(ctx context.Context, h *Handle) { f(ctx, h) }

// heldLease is a lease this worker holds.
type heldLease struct {
	key    string
	lease  Lease // as written by our take (checkpoint at acquisition)
	handle *Handle
	ctx    context.Context // the processor's
	cancel context.CancelFunc
	lostCh chan struct{}
	done   chan struct{} // closed when the processor goroutine exits; nil until started (Coordinator.mu)

	mu             sync.Mutex // serializes writes to this lease; guards below
	counter        int64
	lastRenew      time.Time
	lastCheckpoint time.Time
	lost           bool // lost, released or given up: never write again
	ended          bool // SHARD_END written
	// unsure: a write failed without an answer (timeout), so it may have
	// landed and moved the counter; a refusal is then checked, not believed.
	unsure bool
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

// Lease returns the lease as it was at acquisition.
func (h *Handle) Lease() Lease { return h.h.lease }

// Lost is closed once the lease is no longer held (lost, or released at
// shutdown); writes through the handle then return ErrLeaseLost.
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
	if hl.lost {
		hl.mu.Unlock()
		return fmt.Errorf("write checkpoint for %s: %w", hl.key, ErrLeaseLost)
	}
	if hl.ended { // never move a finished shard's checkpoint back
		hl.mu.Unlock()
		return fmt.Errorf("write checkpoint for %s: %w", hl.key, ErrShardEnded)
	}
	err := c.tbl.checkpoint(ctx, hl.key, hl.counter, c.cfg.WorkerID, seq, sub, children)
	if isConditionalFailure(err) && c.reconcileLocked(ctx, hl) {
		err = c.tbl.checkpoint(ctx, hl.key, hl.counter, c.cfg.WorkerID, seq, sub, children)
	}
	noteUnsureLocked(hl, err)
	if err == nil {
		now := time.Now()
		hl.counter++
		hl.lastRenew, hl.lastCheckpoint = now, now // a conditional write proves we hold it
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

// noteUnsureLocked records whether the last write's fate is unknown.
func noteUnsureLocked(hl *heldLease, err error) {
	switch {
	case err == nil, isConditionalFailure(err):
		hl.unsure = false
	default:
		hl.unsure = true
	}
}

// reconcileLocked runs after a refused write. When an earlier write timed
// out, it may have succeeded: the counter then moved under our own name and
// the refusal says nothing about ownership. Re-read the lease; if we still
// own it, adopt its counter so the caller can retry, instead of dropping the
// shard and re-delivering everything since the last checkpoint.
func (c *Coordinator) reconcileLocked(ctx context.Context, hl *heldLease) bool {
	if !hl.unsure {
		return false
	}
	l, found, err := c.tbl.get(ctx, hl.key)
	if err != nil || !found || l.Owner != c.cfg.WorkerID || l.Counter <= hl.counter {
		return false
	}
	c.log.Info("lease counter moved by our own unanswered write; keeping the lease", "shard", hl.key,
		"expected", hl.counter, "found", l.Counter)
	hl.counter = l.Counter
	hl.unsure = false
	return true
}
