// Package delay holds a node stand-in's replies for a configured latency on a
// timer of nanosecond resolution. Go's timers wake through epoll_wait, whose
// timeout is whole milliseconds (golang/go#53824): devnode's 5 ms replies came
// 0.7-2.8 ms late at the median (1 to 64 connections), so a latency-bound
// benchmark measured the stand-in's timer instead of its client. On Linux a Delayer is one timerfd (nanosecond resolution, still
// woken through the netpoller); elsewhere, and if no timerfd can be made, Go's
// timers. devnode and internal/leastnode use it.
package delay

import (
	"container/heap"
	"time"
)

// A Delayer holds callers for a duration each.
type Delayer interface {
	// Wait returns true once d has passed, false as soon as either stop
	// channel (nil: none) is closed first.
	Wait(d time.Duration, stop1, stop2 <-chan struct{}) bool
	// Close releases what the Delayer holds (a timerfd). A Wait held then, or
	// made later, may end only through its stop channels, or return false at
	// once: a caller closes them first, as devnode's and the least node's
	// shutdowns do.
	Close()
}

// Timers is a Delayer on Go's timers: millisecond-grained under load.
type Timers struct{}

// Wait implements Delayer.
func (Timers) Wait(d time.Duration, stop1, stop2 <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop1:
		return false
	case <-stop2:
		return false
	}
}

// Close implements Delayer.
func (Timers) Close() {}

// entry is one held caller: ch is closed at the deadline at.
type entry struct {
	at int64 // on the delayer's clock, ns
	ch chan struct{}
	i  int // index in the heap; -1 once out of it
}

// deadlines orders held callers by deadline: a latency lowered while some are
// held gives later callers earlier deadlines.
type deadlines []*entry

func (h deadlines) Len() int           { return len(h) }
func (h deadlines) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlines) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *deadlines) Push(x any) {
	e := x.(*entry)
	e.i = len(*h)
	*h = append(*h, e)
}
func (h *deadlines) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.i = -1
	return e
}

var _ heap.Interface = (*deadlines)(nil)
