package delay

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The timerfd's reader runs only while callers are held: none may be left.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// delayers are both Delayers: New (a timerfd on Linux) and Go's timers.
func delayers() map[string]func() Delayer {
	return map[string]func() Delayer{"New": New, "Timers": func() Delayer { return Timers{} }}
}

func TestWaitHoldsEveryCallerAtLeastItsDuration(t *testing.T) {
	t.Parallel()
	for name, mk := range delayers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dl := mk()
			t.Cleanup(dl.Close)
			// Decreasing delays started one after the other give later waits
			// earlier deadlines, as SetLatency lowering the latency does.
			var wg sync.WaitGroup
			errs := make(chan string, 200)
			for i := range 200 {
				d := time.Duration(200-i) * 100 * time.Microsecond
				if i%7 == 0 {
					d = 0
				}
				start := time.Now()
				wg.Go(func() {
					if !dl.Wait(d, nil, nil) {
						errs <- fmt.Sprintf("wait(%v) returned false with no stop", d)
						return
					}
					if took := time.Since(start); took < d {
						errs <- fmt.Sprintf("wait(%v) returned after %v", d, took)
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

func TestWaitStopsOnEitherChannel(t *testing.T) {
	t.Parallel()
	for name, mk := range delayers() {
		for _, which := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/stop%d", name, which), func(t *testing.T) {
				t.Parallel()
				dl := mk()
				t.Cleanup(dl.Close)
				s1, s2 := make(chan struct{}), make(chan struct{})
				res := make(chan bool, 1)
				go func() { res <- dl.Wait(time.Hour, s1, s2) }()
				// A shorter wait started after it still ends on time: the
				// hour-long one held the timer's head only until it left.
				if !dl.Wait(time.Millisecond, nil, nil) {
					t.Fatal("1ms wait returned false")
				}
				if which == 1 {
					close(s1)
				} else {
					close(s2)
				}
				select {
				case ok := <-res:
					if ok {
						t.Fatal("stopped wait returned true")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("stopped wait did not return")
				}
				if !dl.Wait(time.Millisecond, nil, nil) {
					t.Fatal("wait after a stopped one returned false")
				}
			})
		}
	}
}

func TestWaitAfterCloseDoesNotHold(t *testing.T) {
	t.Parallel()
	dl := New()
	dl.Close()
	stop := make(chan struct{})
	close(stop)
	if dl.Wait(time.Hour, stop, nil) {
		t.Fatal("wait on a closed delayer returned true")
	}
}
