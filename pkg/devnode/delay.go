package devnode

import (
	"container/heap"
	"time"
)

// A delayer holds replies for devnode's latency. Go's timers wake through
// epoll_wait, whose timeout is whole milliseconds (golang/go#53824): a 5 ms
// reply under 64 concurrent messages came 1-2 ms late, so a latency-bound
// benchmark measured devnode's timer instead of its client. On Linux the delay
// is served by one timerfd (nanosecond resolution, still woken through the
// netpoller); elsewhere, and if no timerfd can be made, by Go timers.
type delayer interface {
	// wait returns true once d has passed, false as soon as either stop
	// channel is closed first.
	wait(d time.Duration, stop1, stop2 <-chan struct{}) bool
	close()
}

// timerDelayer is Go's timers: millisecond-grained under load, everywhere.
type timerDelayer struct{}

func (timerDelayer) wait(d time.Duration, stop1, stop2 <-chan struct{}) bool {
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

func (timerDelayer) close() {}

// delayEntry is one held reply: ch is closed at the deadline at.
type delayEntry struct {
	at int64 // on the delayer's clock, ns
	ch chan struct{}
	i  int // index in the heap; -1 once out of it
}

// delayHeap orders held replies by deadline: a latency lowered while replies are
// held gives later replies earlier deadlines.
type delayHeap []*delayEntry

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *delayHeap) Push(x any) {
	e := x.(*delayEntry)
	e.i = len(*h)
	*h = append(*h, e)
}
func (h *delayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.i = -1
	return e
}

var _ heap.Interface = (*delayHeap)(nil)
