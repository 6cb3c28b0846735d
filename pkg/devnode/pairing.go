package devnode

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Call is one completed call: a request message followed by its response message.
type Call struct {
	ID string `json:"id"`
	// LogRequestID is the access log's request id inside a connector node id
	// (LogRequestID(ID)); empty for other ids.
	LogRequestID     string    `json:"log_request_id,omitempty"`
	Method           string    `json:"method"`
	Host             string    `json:"host"` // forwarded host
	Path             string    `json:"path"` // as sent, without PathPrefix
	ClientIP         string    `json:"client_ip"`
	ConnectorType    string    `json:"connector_type,omitempty"`
	ConnectorVersion string    `json:"connector_version,omitempty"`
	Status           int       `json:"status"`
	RequestAt        time.Time `json:"request_at"`  // when the request message arrived
	ResponseAt       time.Time `json:"response_at"` // when the response message arrived
}

// pendingHalf is a request message waiting for its response message.
type pendingHalf struct {
	call Call // Status and ResponseAt unset
	seq  uint64
	// dups counts duplicate request messages seen while pending.
	dups int
}

type completedCall struct {
	call Call
	// deliveries counts the request messages seen for this id: 1 + rejected duplicates.
	deliveries int
}

type queued struct {
	id       string
	seq      uint64
	deadline int64 // unix nanos; unused in the completed queue
}

// fifo is a slice-backed queue that compacts once the consumed head dominates.
type fifo struct {
	items []queued
	head  int
}

func (q *fifo) push(x queued) { q.items = append(q.items, x) }
func (q *fifo) len() int      { return len(q.items) - q.head }
func (q *fifo) peek() *queued { return &q.items[q.head] }
func (q *fifo) pop() {
	q.items[q.head] = queued{} // release the id string
	q.head++
	if q.head >= 1024 && q.head*2 >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	} else if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
	}
}

// shard holds the pairing state of the request ids hashing to it. Expiry is lazy:
// every access sweeps the shard's pending queue (arrival order = expiry order, as the
// TTL is fixed), so no background goroutine is needed.
type shard struct {
	mu        sync.Mutex
	seq       uint64
	pending   map[string]*pendingHalf
	pendingQ  fifo
	completed map[string]*completedCall
	doneQ     fifo
	_         [64]byte // keep neighbouring shards' locks off one cache line
}

const numShards = 64

type pairing struct {
	seed         maphash.Seed
	shards       [numShards]shard
	ttl          time.Duration
	maxPending   int64
	maxCompleted int // per shard
	pendingCount atomic.Int64
	// onExpire is called, with the shard lock held, for each dropped request half.
	onExpire func(c *Call)
	// onForget is called, with the shard lock held, for each forgotten completed call.
	onForget func()
}

func newPairing(ttl time.Duration, maxPending, maxCompleted int) *pairing {
	p := &pairing{
		seed:         maphash.MakeSeed(),
		ttl:          ttl,
		maxPending:   int64(maxPending),
		maxCompleted: max(1, maxCompleted/numShards),
		onExpire:     func(*Call) {},
		onForget:     func() {},
	}
	for i := range p.shards {
		p.shards[i].pending = make(map[string]*pendingHalf)
		p.shards[i].completed = make(map[string]*completedCall)
	}
	return p
}

func (p *pairing) shardFor(id string) *shard {
	return &p.shards[maphash.String(p.seed, id)%numShards]
}

// sweepLocked drops the shard's request halves older than the TTL.
func (p *pairing) sweepLocked(sh *shard, now int64) {
	for sh.pendingQ.len() > 0 {
		q := sh.pendingQ.peek()
		if q.deadline > now {
			return
		}
		if ph, ok := sh.pending[q.id]; ok && ph.seq == q.seq {
			delete(sh.pending, q.id)
			p.pendingCount.Add(-1)
			p.onExpire(&ph.call)
		}
		sh.pendingQ.pop()
	}
}

func (p *pairing) sweepAll(now time.Time) {
	n := now.UnixNano()
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		p.sweepLocked(sh, n)
		sh.mu.Unlock()
	}
}

// addRequest records a request half. It fails with ReasonDuplicateRequestID when the
// id is pending or completed, and ReasonPendingFull when too many halves wait.
func (p *pairing) addRequest(c Call) (Reason, bool) {
	sh := p.shardFor(c.ID)
	now := c.RequestAt.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p.sweepLocked(sh, now)
	if ph, ok := sh.pending[c.ID]; ok {
		ph.dups++
		return ReasonDuplicateRequestID, false
	}
	if cc, ok := sh.completed[c.ID]; ok {
		cc.deliveries++
		return ReasonDuplicateRequestID, false
	}
	if p.pendingCount.Load() >= p.maxPending {
		return ReasonPendingFull, false
	}
	sh.seq++
	sh.pending[c.ID] = &pendingHalf{call: c, seq: sh.seq}
	sh.pendingQ.push(queued{id: c.ID, seq: sh.seq, deadline: now + int64(p.ttl)})
	p.pendingCount.Add(1)
	return 0, true
}

// responseMatch is what a response half must agree on with its request half.
type responseMatch struct {
	host, path, clientIP string
}

// completeResponse pairs a response half with its pending request half and returns
// the completed call.
func (p *pairing) completeResponse(id string, m responseMatch, status int, at time.Time) (Call, Reason, bool) {
	sh := p.shardFor(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p.sweepLocked(sh, at.UnixNano())
	ph, ok := sh.pending[id]
	if !ok {
		if _, done := sh.completed[id]; done {
			return Call{}, ReasonDuplicateResponse, false
		}
		return Call{}, ReasonResponseWithoutRequest, false
	}
	if ph.call.Host != m.host || ph.call.Path != m.path || ph.call.ClientIP != m.clientIP {
		// Keep the request half: the right response may still come.
		return Call{}, ReasonMismatchedResponse, false
	}
	delete(sh.pending, id)
	p.pendingCount.Add(-1)
	c := ph.call
	c.Status = status
	c.ResponseAt = at
	sh.completed[id] = &completedCall{call: c, deliveries: 1 + ph.dups}
	sh.doneQ.push(queued{id: id})
	for sh.doneQ.len() > p.maxCompleted {
		delete(sh.completed, sh.doneQ.peek().id)
		sh.doneQ.pop()
		p.onForget()
	}
	return c, 0, true
}

func (p *pairing) calls() []Call {
	var out []Call
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		out = slices.Grow(out, len(sh.completed))
		for _, cc := range sh.completed {
			out = append(out, cc.call)
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Call) int {
		return cmp.Or(a.ResponseAt.Compare(b.ResponseAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// delivered maps completed ids to their request-message counts, and (in
// byLog) log request ids to the counts summed over their node ids plus the
// number of node ids.
func (p *pairing) delivered() (byID map[string]int, byLog map[string][2]int) {
	byID, byLog = make(map[string]int), make(map[string][2]int)
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for id, cc := range sh.completed {
			byID[id] = cc.deliveries
			if l := cc.call.LogRequestID; l != "" {
				v := byLog[l]
				byLog[l] = [2]int{v[0] + cc.deliveries, v[1] + 1}
			}
		}
		sh.mu.Unlock()
	}
	return byID, byLog
}
