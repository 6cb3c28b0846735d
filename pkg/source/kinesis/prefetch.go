package kinesis

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// fetched is one GetRecords result (or the shard's end) queued for the submitting goroutine.
type fetched struct {
	records []types.Record
	readAt  time.Time
	// end is set on the last item of a closed shard.
	end *shardEnd
}

type shardEnd struct {
	children []string
	gone     bool // Kinesis no longer knows the shard (ResourceNotFoundException)
}

// prefetchQueue bounds what a shard reads ahead while the current batch is handed to the
// pipeline: at most maxBatches results and maxRecords records, but always at least one result,
// so a GetRecords result larger than maxRecords still flows.
type prefetchQueue struct {
	mu         sync.Mutex
	items      []fetched
	records    int
	maxBatches int
	maxRecords int
	closed     bool
	changed    chan struct{} // closed and replaced on every change
}

func newPrefetchQueue(maxBatches, maxRecords int) *prefetchQueue {
	return &prefetchQueue{maxBatches: maxBatches, maxRecords: maxRecords, changed: make(chan struct{})}
}

func (q *prefetchQueue) signalLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// put waits for room and queues f; false when ctx ended first.
func (q *prefetchQueue) put(ctx context.Context, f fetched) bool {
	for {
		q.mu.Lock()
		if len(q.items) == 0 || (len(q.items) < q.maxBatches && q.records+len(f.records) <= q.maxRecords) {
			q.items = append(q.items, f)
			q.records += len(f.records)
			q.signalLocked()
			q.mu.Unlock()
			return true
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// close tells get that nothing more will be put.
func (q *prefetchQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.signalLocked()
	q.mu.Unlock()
}

// get returns the next item; false when the queue is closed and drained or ctx ended.
func (q *prefetchQueue) get(ctx context.Context) (fetched, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			f := q.items[0]
			q.items[0] = fetched{}
			q.items = q.items[1:]
			q.records -= len(f.records)
			q.signalLocked()
			q.mu.Unlock()
			return f, true
		}
		if q.closed {
			q.mu.Unlock()
			return fetched{}, false
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fetched{}, false
		}
	}
}
