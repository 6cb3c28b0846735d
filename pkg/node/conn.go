package node

import (
	"bufio"
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The node client's own HTTP/1.1 transport. A connection carries up to
// node.pipeline_depth exchanges at once (HTTP/1.1 pipelining, RFC 9112 9.3.2:
// the server answers in request order), so under load several messages leave in
// one write and several replies arrive in one read: the system calls, and the
// loopback or NIC work they carry, are paid per batch instead of per message.
//
// Each connection has one reader goroutine that reads the replies in order and
// hands each to the caller waiting for it. While the connection is idle the
// same read notices a reply nobody asked for, or the node's close, at once: the
// connection is then dropped, never reused.
//
// Pipelining a message behind others makes it wait for them: a node that takes
// its time per message (and answers one connection's messages one after the
// other, as HTTP/1.1 servers do) would cost throughput. So a message joins a
// busy connection only while the wait behind the messages ahead (their number x
// the time between two replies of a pipeline, measured over the pool) is less
// than half the reply time of a message sent alone; otherwise it takes an idle
// connection or a new one, as it would without pipelining.

const (
	idleTimeout    = 90 * time.Second // an idle connection older than this is closed
	maxHeaderBytes = 64 << 10         // of a reply's status line and headers
	max1xxReplies  = 5                // informational replies skipped before the final one
	readBufferSize = 16 << 10         // several pipelined replies per read
	maxKeptBuf     = 64 << 10         // a connection's write buffer grown past this is not kept

	// pipelineStall: a connection whose oldest message has waited this long
	// for its reply gets no more behind it.
	pipelineStall = 50 * time.Millisecond
	// pipelineProbeEvery: one message in this many joins a busy connection
	// regardless, so the time between pipelined replies stays measured; a
	// node slow per message pays one extra wait per this many messages.
	pipelineProbeEvery = 64
)

// errConnLost completes an exchange that got no reply because its connection
// ended first (the node closed it after an earlier reply, an earlier reply was
// broken, or a write failed). The message is resent.
var errConnLost = errors.New("node connection closed before the reply")

// errConnGone is an exchange that was never written: its connection died
// between being picked and being used.
var errConnGone = errors.New("node connection gone before the message was sent")

// errUnsolicited is bytes from the node on a connection with nothing asked.
var errUnsolicited = errors.New("node sent bytes on an idle connection")

// pending is one message sent (or being sent) on a connection, awaiting its reply.
type pending struct {
	method string    // of the message: a reply to HEAD has no body
	sentAt time.Time // for the deadline and the node's time per message
	behind bool      // sent while another message awaited its reply
	done   chan struct{}

	r       reply
	err     error
	noReply bool // not one byte of a reply came
}

var pendingPool = sync.Pool{New: func() any { return &pending{done: make(chan struct{}, 1)} }}

func (x *pending) complete(r reply, err error, noReply bool) {
	x.r, x.err, x.noReply = r, err, noReply
	x.done <- struct{}{}
}

// pconn is one connection to the node.
type pconn struct {
	p  *connPool
	nc net.Conn
	br *bufio.Reader

	inflight int // guarded by p.mu: exchanges picked for it and not completed
	idleAt   time.Time

	headSince atomic.Int64 // unix ns since the oldest outstanding message is the node's to answer

	// readAt is when the last read from the node returned bytes: the arrival
	// of the replies parsed from them (the read loop's own).
	readAt time.Time

	mu      sync.Mutex
	rdl     time.Time  // the read deadline set on nc
	bodyDL  time.Time  // while the read loop reads a reply's body: its deadline
	queue   []*pending // in wire order
	qbase   []*pending // queue's array from its start: an emptied queue starts there again
	wbuf    []byte     // messages waiting for the writer
	spare   []byte
	writing bool
	dead    bool
	replies int // replies read
}

// connPool bounds the connections to the node (max, dials included) and the
// exchanges per connection (depth).
type connPool struct {
	dial         func(ctx context.Context) (net.Conn, error)
	max, depth   int
	replyTimeout time.Duration

	lone atomic.Int64 // reply time of a message sent on an idle connection (EWMA, ns)
	gap  atomic.Int64 // time between two replies of a pipeline (EWMA, ns); 0: none seen yet

	mu          sync.Mutex
	conns       []*pconn
	picks       int // for the probe joins
	dialing     int
	waiters     int
	freed       chan struct{} // closed when capacity frees up, while waiters > 0
	closing     bool          // set by closeIdle until the next get: connections are closed once idle
	reaper      *time.Timer
	reaperArmed bool
}

func newConnPool(maxConns, depth int, replyTimeout time.Duration, dial func(context.Context) (net.Conn, error)) *connPool {
	p := &connPool{dial: dial, max: maxConns, depth: max(depth, 1), replyTimeout: replyTimeout, freed: make(chan struct{})}
	p.reaper = time.AfterFunc(time.Hour, p.reap)
	p.reaper.Stop()
	return p
}

// get picks a connection for one exchange (dialing one if needed), waiting for
// capacity or ctx. The caller must send on it (pconn.send) with now, the time
// of the pick: one clock reading serves both (it is dear on some hosts, and
// there are two messages per call).
func (p *connPool) get(ctx context.Context) (*pconn, time.Time, error) {
	for {
		now := time.Now()
		p.mu.Lock()
		p.closing = false
		if pc := p.pick(now.UnixNano()); pc != nil {
			pc.inflight++
			p.mu.Unlock()
			return pc, now, nil
		}
		// Pipelining: while a connection is being opened, wait for it rather
		// than open another (it can take those who wait, up to depth); else
		// every caller of a burst opens its own, and none pipelines.
		if len(p.conns)+p.dialing < p.max && (p.dialing == 0 || !p.joinPays(1)) {
			p.dialing++
			p.mu.Unlock()
			pc, err := p.dialNew(ctx)
			return pc, time.Now(), err
		}
		if pc := p.leastLoaded(); pc != nil && p.dialing == 0 {
			pc.inflight++
			p.mu.Unlock()
			return pc, now, nil
		}
		p.waiters++
		wait := p.freed
		p.mu.Unlock()
		select {
		case <-wait:
			p.mu.Lock()
			p.waiters--
			p.mu.Unlock()
		case <-ctx.Done():
			p.mu.Lock()
			p.waiters--
			p.mu.Unlock()
			return nil, now, ctx.Err()
		}
	}
}

// pick returns a busy connection worth joining (the fullest whose expected
// wait is short: batches stay large) or else an idle one (the most recently
// used: the others age out), or nil. now is the time in unix ns.
func (p *connPool) pick(now int64) *pconn {
	var join, idle *pconn
	// Now and then a message joins a connection with one message ahead even
	// when the estimates say no: else a gap measured while the node was
	// slow would never be measured again.
	p.picks++
	probe := p.depth > 1 && p.picks%pipelineProbeEvery == 0
	for _, pc := range p.conns {
		n := pc.inflight
		if n == 0 {
			idle = pc
			continue
		}
		if n >= p.depth || (join != nil && n <= join.inflight) {
			continue
		}
		if time.Duration(now-pc.headSince.Load()) > pipelineStall {
			continue // the node sits on a message here: do not pile more behind it
		}
		// Join while the wait behind the n ahead costs less than half a
		// round trip of its own: so for a node that answers pipelined
		// messages back to back (a busy node, or one far away), not for one
		// that spends as long on each message as on a lone one.
		if p.joinPays(n) || (probe && n == 1) {
			join = pc
		}
	}
	if join != nil {
		return join
	}
	return idle
}

// joinPays reports whether a message behind n others would wait less than half
// a round trip of its own. Unknown before a pipeline was measured: then only
// behind one other, and that reply tells. (Deeper, a burst of calls at start
// piled depth messages onto each connection, and a node slow per message made
// the last of each wait depth round trips.)
func (p *connPool) joinPays(n int) bool {
	if p.depth == 1 {
		return false
	}
	if g := p.gap.Load(); g != 0 {
		return 2*int64(n)*g <= p.lone.Load()
	}
	return n <= 1
}

// leastLoaded is the connection with the fewest exchanges below depth, when no
// more connections may be opened.
func (p *connPool) leastLoaded() *pconn {
	var best *pconn
	for _, pc := range p.conns {
		if pc.inflight < p.depth && (best == nil || pc.inflight < best.inflight) {
			best = pc
		}
	}
	return best
}

func (p *connPool) dialNew(ctx context.Context) (*pconn, error) {
	nc, err := p.dial(ctx)
	p.mu.Lock()
	p.dialing--
	if err != nil {
		p.notifyLocked()
		p.mu.Unlock()
		return nil, err
	}
	pc := &pconn{p: p, nc: nc, inflight: 1}
	pc.br = bufio.NewReaderSize(readFunc(pc.fill), readBufferSize)
	p.conns = append(p.conns, pc)
	p.mu.Unlock()
	go pc.readLoop()
	return pc, nil
}

func (p *connPool) notifyLocked() {
	if p.waiters > 0 {
		close(p.freed)
		p.freed = make(chan struct{})
	}
}

// release ends one exchange of pc: a slot frees up, and an idle connection is
// kept (or closed when closeIdle asked for it).
func (p *connPool) release(pc *pconn, dead bool) {
	p.mu.Lock()
	pc.inflight--
	if pc.inflight == 0 && !dead {
		pc.idleAt = time.Now()
		if p.closing {
			p.removeLocked(pc)
			_ = pc.nc.Close()
		} else if !p.reaperArmed {
			p.reaperArmed = true
			p.reaper.Reset(idleTimeout)
		}
	}
	p.notifyLocked()
	p.mu.Unlock()
}

// remove takes a dead connection out of the pool.
func (p *connPool) remove(pc *pconn) {
	p.mu.Lock()
	p.removeLocked(pc)
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *connPool) removeLocked(pc *pconn) {
	for i, o := range p.conns {
		if o == pc {
			last := len(p.conns) - 1
			p.conns[i] = p.conns[last]
			p.conns[last] = nil
			p.conns = p.conns[:last]
			return
		}
	}
}

// reap closes the connections idle for longer than idleTimeout and re-arms
// itself while any stay open.
func (p *connPool) reap() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	next := idleTimeout
	for i := 0; i < len(p.conns); i++ {
		pc := p.conns[i]
		if pc.inflight > 0 {
			continue
		}
		if age := now.Sub(pc.idleAt); age < idleTimeout {
			next = min(next, idleTimeout-age)
			continue
		}
		p.removeLocked(pc)
		_ = pc.nc.Close()
		i--
	}
	if len(p.conns) > 0 {
		p.reaper.Reset(next)
	} else {
		p.reaperArmed = false
	}
}

// closeIdle closes the idle connections; connections in use are closed once
// idle, until the pool is used again.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < len(p.conns); i++ {
		if pc := p.conns[i]; pc.inflight == 0 {
			p.removeLocked(pc)
			_ = pc.nc.Close()
			i--
		}
	}
	p.closing = true
	p.reaper.Stop()
	p.reaperArmed = false
}

// send queues the message on pc and writes it, together with whatever other
// callers queued meanwhile (one of them writes for all). reused reports that
// the connection carried or carries other exchanges: a failure without a
// reply there says the node closed a connection it had kept, not that this
// message failed. now, from get, is the time it counts as sent.
func (pc *pconn) send(x *pending, now time.Time, build func([]byte) []byte) (reused bool) {
	pc.mu.Lock()
	if pc.dead {
		pc.mu.Unlock()
		pc.p.release(pc, true)
		x.complete(reply{}, errConnGone, true)
		return false
	}
	reused = pc.replies > 0 || len(pc.queue) > 0
	x.sentAt = now
	if len(pc.queue) == 0 {
		// Replies take from the front; without this the queue walks off the
		// array's end and reallocates every few messages.
		pc.queue = pc.qbase[:0]
	}
	grown := len(pc.queue) == cap(pc.queue)
	pc.queue = append(pc.queue, x)
	if grown {
		pc.qbase = pc.queue
	}
	x.behind = len(pc.queue) > 1
	if len(pc.queue) == 1 {
		// The read loop may be waiting without a deadline already.
		pc.headSince.Store(x.sentAt.UnixNano())
		_ = pc.setReadDeadlineLocked(x.sentAt.Add(pc.p.replyTimeout))
	}
	pc.wbuf = build(pc.wbuf)
	if pc.writing {
		pc.mu.Unlock()
		return reused
	}
	pc.writing = true
	// Let callers that are ready to send queue behind this message, so that
	// one write carries them all; again while the last yield brought some
	// (their wake-ups let replies on other connections wake more callers).
	// Not when none would join (a node slow per message): the yield would
	// only delay this one.
	for n := 0; n < len(pc.queue) && len(pc.queue) < pc.p.depth && pc.p.joinPays(len(pc.queue)); {
		n = len(pc.queue)
		pc.mu.Unlock()
		runtime.Gosched()
		pc.mu.Lock()
	}
	for len(pc.wbuf) > 0 {
		buf := pc.wbuf
		pc.wbuf = pc.spare[:0]
		pc.mu.Unlock()
		// reply_timeout bounds the write too.
		err := pc.nc.SetWriteDeadline(time.Now().Add(pc.p.replyTimeout))
		if err == nil {
			_, err = pc.nc.Write(buf)
		}
		pc.mu.Lock()
		if cap(buf) <= maxKeptBuf {
			pc.spare = buf[:0]
		}
		if err != nil {
			pc.writing = false
			pc.mu.Unlock()
			pc.fail(err)
			return reused
		}
	}
	pc.writing = false
	pc.mu.Unlock()
	return reused
}

// fail ends the connection: every exchange still waiting gets err, without a reply.
func (pc *pconn) fail(err error) {
	pc.mu.Lock()
	if pc.dead {
		pc.mu.Unlock()
		return
	}
	pc.dead = true
	q := pc.queue
	pc.queue = nil
	pc.wbuf = nil
	pc.mu.Unlock()
	_ = pc.nc.Close()
	pc.p.remove(pc)
	for _, x := range q {
		pc.p.release(pc, true)
		x.complete(reply{}, err, true)
	}
}

// readLoop reads the replies in order, each for the oldest waiting exchange,
// until the connection ends.
func (pc *pconn) readLoop() {
	c := pc.p
	for {
		_, err := pc.br.Peek(1)
		pc.mu.Lock()
		if len(pc.queue) == 0 {
			pc.mu.Unlock()
			// Idle: a reply nobody asked for (read as the next message's, it
			// would settle a call the node did not accept) or the node's close.
			if err == nil {
				err = errUnsolicited
			}
			pc.fail(err)
			return
		}
		// Read under mu: once fail ran (a write failed meanwhile), x is its
		// caller's again.
		x := pc.queue[0]
		method, sentAt, behind := x.method, x.sentAt, x.behind
		pc.mu.Unlock()
		if err != nil {
			pc.fail(err) // the head got no reply byte either
			return
		}
		r, keep, err := readReply(pc.br, method, func() error {
			// reply_timeout bounds the reading of a body too.
			pc.mu.Lock()
			defer pc.mu.Unlock()
			pc.bodyDL = time.Now().Add(c.replyTimeout)
			return pc.setReadDeadlineLocked(pc.bodyDL)
		})
		now := pc.readAt
		since := pc.headSince.Load() // when x became the node's to answer
		var rest []*pending
		pc.mu.Lock()
		pc.bodyDL = time.Time{}
		if pc.dead {
			// A failed write ended the connection meanwhile: fail completed
			// every exchange, this one too (its reply, if whole, unused).
			pc.mu.Unlock()
			return
		}
		pc.queue[0] = nil
		pc.queue = pc.queue[1:]
		pc.replies++
		last := err != nil || !keep
		switch {
		case last:
			pc.dead = true
			rest, pc.queue, pc.wbuf = pc.queue, nil, nil
		case len(pc.queue) > 0:
			pc.headSince.Store(now.UnixNano())
		default:
			if cap(pc.qbase) > 4*c.depth {
				pc.queue, pc.qbase = nil, nil
			}
		}
		pc.mu.Unlock()
		if err == nil && !behind {
			ewma(&c.lone, now.Sub(sentAt).Nanoseconds())
		}
		if err == nil && behind {
			// The time between two replies of a pipeline: what a message
			// behind another costs. A node that answers a connection's
			// messages one at a time, slowly, shows it here; a node that is
			// merely busy answers a pipeline's messages back to back.
			ewma(&c.gap, now.UnixNano()-max(since, sentAt.UnixNano()))
		}
		if last {
			_ = pc.nc.Close()
			c.remove(pc)
		}
		c.release(pc, last)
		x.complete(r, err, false)
		if last {
			// The node closed (or broke) the connection after this reply:
			// the messages behind it got none and are resent.
			for _, y := range rest {
				c.release(pc, true)
				y.complete(reply{}, errConnLost, true)
			}
			return
		}
	}
}

// readFunc adapts a function to io.Reader.
type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// fill is the read loop's only way to the socket (through br). The read
// deadline is brought up to date here, before a read that may wait, instead of
// after every reply: several replies arrive in one read, and a read that waits
// always has the deadline of the message at the head (a body's own while one
// is read; none while nothing is asked).
func (pc *pconn) fill(p []byte) (int, error) {
	pc.mu.Lock()
	want := pc.bodyDL
	if want.IsZero() && len(pc.queue) > 0 {
		want = pc.queue[0].sentAt.Add(pc.p.replyTimeout)
	}
	_ = pc.setReadDeadlineLocked(want)
	pc.mu.Unlock()
	n, err := pc.nc.Read(p)
	if n > 0 {
		pc.readAt = time.Now()
	}
	return n, err
}

// setReadDeadlineLocked sets the read deadline unless it is set already.
func (pc *pconn) setReadDeadlineLocked(t time.Time) error {
	if t.Equal(pc.rdl) {
		return nil
	}
	pc.rdl = t
	return pc.nc.SetReadDeadline(t)
}

// ewma folds sample (ns) into v, weight 1/4; 0 in v means none yet.
func ewma(v *atomic.Int64, sample int64) {
	sample = max(sample, 1)
	if old := v.Load(); old == 0 {
		v.Store(sample)
	} else {
		v.Store(max(old+(sample-old)/4, 1))
	}
}
