package kinesis

import (
	"context"
	"sync"
	"time"

	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// settlement is what the checkpointer needs of a *pipeline.Settlement.
type settlement interface {
	Done() <-chan struct{}
	Outcome() pipeline.Outcome
}

// position is a place in a shard: a sequence number (or the lease's TRIM_HORIZON, LATEST,
// AT_TIMESTAMP) and the sub-sequence number of a KPL user record within it (0 for plain
// records), the Java KCL's ExtendedSequenceNumber.
type position struct {
	seq string
	sub int64
}

type pendingRecord struct {
	pos    position
	s      settlement
	readAt time.Time
}

// checkpointer keeps one shard's records in arrival order from hand-over to the pipeline until
// they settle, and yields the highest sequence number below which every record has settled.
// Records settle out of order (the pipeline forwards calls concurrently); the cursor only moves
// over a settled prefix, so a later record settling first never moves the checkpoint past an
// earlier one. Settlements are polled, not watched, so no goroutine is spent per record.
type checkpointer struct {
	mu      sync.Mutex
	pending []pendingRecord // arrival order; pending[head:] are live
	head    int
	settled position // last position of the settled prefix
	written position // last position written to the lease table
	// unwrittenSince is when the oldest settled record not yet covered by a written checkpoint
	// was read (zero when none).
	unwrittenSince time.Time
	stuck          bool // an abandoned record sits at the front: the cursor never moves again
}

func newCheckpointer(start position) *checkpointer {
	return &checkpointer{settled: start, written: start}
}

// add records a record just handed to the pipeline.
func (c *checkpointer) add(p position, s settlement, readAt time.Time) {
	c.mu.Lock()
	c.pending = append(c.pending, pendingRecord{pos: p, s: s, readAt: readAt})
	c.mu.Unlock()
}

// advance moves the cursor over every settled record at the front and returns the checkpoint
// candidate and how many undecodable records (or documents) the newly settled records held.
// An abandoned record (delivery context ended) stops the cursor for good: it and what follows
// must be read again by whoever holds the lease next.
func (c *checkpointer) advance() (pos position, undecodable int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.stuck && c.head < len(c.pending) {
		p := c.pending[c.head]
		select {
		case <-p.s.Done():
		default:
			return c.compactLocked(), undecodable
		}
		o := p.s.Outcome()
		if !o.Settled() {
			c.stuck = true
			break
		}
		undecodable += o.DecodeErrors
		c.settled = p.pos
		if c.unwrittenSince.IsZero() {
			c.unwrittenSince = p.readAt
		}
		c.pending[c.head] = pendingRecord{}
		c.head++
	}
	return c.compactLocked(), undecodable
}

// compactLocked drops the consumed front of the queue once it dominates the slice.
func (c *checkpointer) compactLocked() position {
	if c.head > 0 && c.head >= len(c.pending)/2 {
		n := copy(c.pending, c.pending[c.head:])
		clear(c.pending[n:])
		c.pending = c.pending[:n]
		c.head = 0
	}
	return c.settled
}

// toWrite returns the settled position when it moved past the last written one.
func (c *checkpointer) toWrite() (position, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settled, c.settled != c.written
}

// markWritten records a successful checkpoint write of p.
func (c *checkpointer) markWritten(p position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written = p
	if p == c.settled {
		c.unwrittenSince = time.Time{}
	}
}

// inFlight counts records handed to the pipeline and not yet part of the settled prefix.
func (c *checkpointer) inFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) - c.head
}

// oldestUnwritten returns when the oldest record not yet covered by a written checkpoint
// was read (zero when everything read is checkpointed).
func (c *checkpointer) oldestUnwritten() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.unwrittenSince.IsZero() {
		return c.unwrittenSince
	}
	if c.head < len(c.pending) {
		return c.pending[c.head].readAt
	}
	return time.Time{}
}

// isStuck reports whether an abandoned record blocks the cursor.
func (c *checkpointer) isStuck() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stuck
}

// waitAll blocks until every record handed over so far has settled or been abandoned, or ctx ends.
func (c *checkpointer) waitAll(ctx context.Context) error {
	c.mu.Lock()
	live := make([]settlement, 0, len(c.pending)-c.head)
	for _, p := range c.pending[c.head:] {
		live = append(live, p.s)
	}
	c.mu.Unlock()
	for _, s := range live {
		select {
		case <-s.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
