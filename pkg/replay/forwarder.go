package replay

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// LogTime is the time a call was logged: its request time, else the
// CloudWatch Logs event timestamp; zero when the line carries neither.
func LogTime(c *accesslog.APICall) time.Time {
	if !c.RequestTime.IsZero() {
		return c.RequestTime
	}
	return c.LogTime
}

// Forwarder paces the calls of a replay on their way to the node and counts
// them as they go, for progress, --max-wait and the burst warning. It keeps
// the pipeline.Forwarder contract of the forwarder it wraps.
type Forwarder struct {
	next   pipeline.Forwarder
	filter pipeline.Filter
	pacer  *Pacer // nil: unpaced
	clock  Clock

	// SpanWarn, when set, is called once, from a delivering goroutine, when
	// the calls seen so far span more than SpanLimit of log time.
	SpanWarn  func(span time.Duration)
	SpanLimit time.Duration

	sent     atomic.Int64 // Deliver calls that returned: delivered or rejected
	failed   atomic.Int64 // of sent, rejected
	progress atomic.Int64 // unix nanoseconds of the last return, or of the first send of a stall

	mu       sync.Mutex
	sending  int           // calls inside the wrapped forwarder (past the pacer)
	stopped  bool          // Stop was called: nothing more is admitted
	drained  chan struct{} // closed when stopped and sending is 0
	first    time.Time     // earliest log time seen
	last     time.Time     // latest log time seen
	spanDone bool
}

// NewForwarder wraps next; a nil pacer sends unpaced.
func NewForwarder(next pipeline.Forwarder, pacer *Pacer, clock Clock) *Forwarder {
	if clock == nil {
		clock = RealClock{}
	}
	f := &Forwarder{next: next, pacer: pacer, clock: clock, drained: make(chan struct{})}
	f.filter, _ = next.(pipeline.Filter)
	f.progress.Store(clock.Now().UnixNano())
	return f
}

// Filter passes the wrapped forwarder's filter through (the pipeline asks).
func (f *Forwarder) Filter(c *accesslog.APICall) bool {
	return f.filter == nil || f.filter.Filter(c)
}

// Deliver waits for the call's slot, then delivers it. After Stop, a call
// not yet admitted is not sent: it waits for ctx to end and is abandoned,
// so nothing is claimed delivered that was not, and nothing goes out in a
// burst at shutdown.
func (f *Forwarder) Deliver(ctx context.Context, c *accesslog.APICall) error {
	t := LogTime(c)
	f.observe(t)
	if f.pacer != nil {
		if err := f.pacer.Wait(ctx, t); err != nil {
			return err // ctx ended: abandoned
		}
	}
	if !f.admit() {
		<-ctx.Done()
		return ctx.Err()
	}
	err := f.next.Deliver(ctx, c)
	switch {
	case err == nil || alreadyHeld(err):
		f.sent.Add(1)
	case ctx.Err() == nil: // the pipeline's contract: rejected for good
		f.sent.Add(1)
		f.failed.Add(1)
	}
	f.progress.Store(f.clock.Now().UnixNano())
	f.release()
	return err
}

func alreadyHeld(err error) bool {
	var h interface{ AlreadyHeld() bool }
	return errors.As(err, &h) && h.AlreadyHeld()
}

func (f *Forwarder) admit() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	if f.sending == 0 {
		// A stall is measured from the first send that waits, not from the
		// last return, which may be long ago in a paced replay.
		f.progress.Store(f.clock.Now().UnixNano())
	}
	f.sending++
	return true
}

func (f *Forwarder) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sending--
	if f.stopped && f.sending == 0 {
		close(f.drained)
	}
}

func (f *Forwarder) observe(t time.Time) {
	if t.IsZero() {
		return
	}
	f.mu.Lock()
	if f.first.IsZero() || t.Before(f.first) {
		f.first = t
	}
	if t.After(f.last) {
		f.last = t
	}
	span := f.last.Sub(f.first)
	warn := f.SpanWarn != nil && !f.spanDone && f.SpanLimit > 0 && span > f.SpanLimit
	if warn {
		f.spanDone = true
	}
	f.mu.Unlock()
	if warn {
		f.SpanWarn(span)
	}
}

// Stop admits no more calls (a signal: let what is being sent settle) and
// returns a channel closed once the calls being sent have returned.
func (f *Forwarder) Stop() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.stopped = true
		if f.sending == 0 {
			close(f.drained)
		}
	}
	return f.drained
}

// Stats is a snapshot of a replay's delivery.
type Stats struct {
	Sent     int64         // calls the node answered for good (delivered or rejected)
	Rejected int64         // of Sent, rejected
	Sending  int           // calls being sent (retried while the node is down)
	Stalled  time.Duration // calls are being sent and none returned for this long; 0 when none is being sent
	First    time.Time     // earliest log time seen
	Last     time.Time     // latest log time seen
}

// Stats returns the counts so far.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	st := Stats{Sent: f.sent.Load(), Rejected: f.failed.Load(), Sending: f.sending, First: f.first, Last: f.last}
	f.mu.Unlock()
	if st.Sending > 0 {
		st.Stalled = max(f.clock.Now().Sub(time.Unix(0, f.progress.Load())), 0)
	}
	return st
}
