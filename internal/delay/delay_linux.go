package delay

import (
	"container/heap"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fdDelayer holds callers on one timerfd armed for the earliest deadline. A
// goroutine reads it (in the netpoller, like a socket) only while callers are
// held, so an idle one runs none.
type fdDelayer struct {
	f    *os.File
	fd   int
	base time.Time // Go's monotonic clock is CLOCK_MONOTONIC: b0 is base on it
	b0   int64

	mu      sync.Mutex
	h       deadlines
	running bool
	closed  bool
}

// New returns the most precise Delayer this system offers.
func New() Delayer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return Timers{}
	}
	var ts unix.Timespec
	base := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		_ = unix.Close(fd)
		return Timers{}
	}
	// A non-blocking fd makes a pollable File: Read parks in the netpoller.
	return &fdDelayer{f: os.NewFile(uintptr(fd), "delay-timerfd"), fd: fd, base: base, b0: ts.Nano()}
}

func (t *fdDelayer) now() int64 { return t.b0 + int64(time.Since(t.base)) }

// arm sets the timer to fire at at (absolute; at <= now fires at once). mu held.
func (t *fdDelayer) arm(at int64) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(at, 1))}
	// Only a closed fd fails, and closing wakes the reader anyway.
	_ = unix.TimerfdSettime(t.fd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

// Wait implements Delayer.
func (t *fdDelayer) Wait(d time.Duration, stop1, stop2 <-chan struct{}) bool {
	e := &entry{at: t.now() + int64(d), ch: make(chan struct{}), i: -1}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	heap.Push(&t.h, e)
	if e.i == 0 {
		t.arm(e.at)
	}
	if !t.running {
		t.running = true
		go t.loop()
	}
	t.mu.Unlock()
	select {
	case <-e.ch:
		return true
	case <-stop1:
	case <-stop2:
	}
	t.cancel(e)
	return false
}

// cancel takes e out before its deadline; the reader is woken to re-arm, or
// to end if nothing is held any more.
func (t *fdDelayer) cancel(e *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.i < 0 {
		return
	}
	head := e.i == 0
	heap.Remove(&t.h, e.i)
	if head && !t.closed {
		t.arm(1)
	}
}

// loop releases the callers whose deadline passed, each time the timer fires,
// until none is held.
func (t *fdDelayer) loop() {
	var buf [8]byte
	for {
		_, err := t.f.Read(buf[:])
		now := t.now()
		t.mu.Lock()
		if err != nil { // closed: waiters leave through their stop channels
			t.running = false
			t.mu.Unlock()
			return
		}
		for len(t.h) > 0 && t.h[0].at <= now {
			close(heap.Pop(&t.h).(*entry).ch)
		}
		if len(t.h) == 0 {
			t.running = false
			t.mu.Unlock()
			return
		}
		t.arm(t.h[0].at)
		t.mu.Unlock()
	}
}

// Close implements Delayer.
func (t *fdDelayer) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	_ = t.f.Close()
}
