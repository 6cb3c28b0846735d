package devnode

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// delayers are the two ways devnode holds a reply: newDelayer (a timerfd on
// Linux) and Go's timers (the fallback).
func delayers(t testing.TB) map[string]func() delayer {
	t.Helper()
	return map[string]func() delayer{"default": newDelayer, "timers": func() delayer { return timerDelayer{} }}
}

func TestDelayerHoldsEveryReplyAtLeastItsLatency(t *testing.T) {
	t.Parallel()
	for name, mk := range delayers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dl := mk()
			t.Cleanup(dl.close)
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
					if !dl.wait(d, nil, nil) {
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

func TestDelayerStopsOnEitherChannel(t *testing.T) {
	t.Parallel()
	for name, mk := range delayers(t) {
		for _, which := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/stop%d", name, which), func(t *testing.T) {
				t.Parallel()
				dl := mk()
				t.Cleanup(dl.close)
				s1, s2 := make(chan struct{}), make(chan struct{})
				res := make(chan bool, 1)
				go func() { res <- dl.wait(time.Hour, s1, s2) }()
				// A shorter wait started after it still ends on time: the
				// hour-long one held the timer's head only until it left.
				if !dl.wait(time.Millisecond, nil, nil) {
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
				if !dl.wait(time.Millisecond, nil, nil) {
					t.Fatal("wait after a stopped one returned false")
				}
			})
		}
	}
}

func TestDelayerAfterCloseDoesNotHold(t *testing.T) {
	t.Parallel()
	dl := newDelayer()
	dl.close()
	stop := make(chan struct{})
	close(stop)
	if dl.wait(time.Hour, stop, nil) {
		t.Fatal("wait on a closed delayer returned true")
	}
}

// BenchmarkLatencyPrecision: how late devnode's latency replies come, by the
// way it holds them and by the number of connections sending at once (each
// sends its next message when the last reply came). It reports the overshoot
// over Latency (5 ms; 100 messages per connection per op) at the median and the 99th percentile of the replies, as seen
// by the sender.
func BenchmarkLatencyPrecision(b *testing.B) {
	const lat = 5 * time.Millisecond
	for _, name := range []string{"default", "timers"} {
		for _, conns := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("delayer=%s/conns=%d", name, conns), func(b *testing.B) {
				mk := delayers(b)[name]
				n := startNode(b, DefaultOptions(), func(s *Server) {
					s.delayOnce.Do(func() { s.delay = mk() })
				})
				n.SetLatency(lat)
				addr := strings.TrimPrefix(n.base, "http://")
				var mu sync.Mutex
				var late []time.Duration
				var wg sync.WaitGroup
				per := 100 * b.N // sequential messages per connection
				b.ResetTimer()
				for range conns {
					wg.Go(func() {
						nc, err := net.Dial("tcp", addr)
						if err != nil {
							b.Error(err)
							return
						}
						defer nc.Close()
						br := bufio.NewReader(nc)
						mine := make([]time.Duration, 0, per)
						for range per {
							start := time.Now()
							if _, err := nc.Write([]byte("GET " + DefaultHealthPath + " HTTP/1.1\r\nHost: node\r\n\r\n")); err != nil {
								b.Error(err)
								return
							}
							res, err := http.ReadResponse(br, nil)
							if err != nil {
								b.Error(err)
								return
							}
							res.Body.Close()
							mine = append(mine, time.Since(start)-lat)
						}
						mu.Lock()
						late = append(late, mine...)
						mu.Unlock()
					})
				}
				wg.Wait()
				b.StopTimer()
				if len(late) == 0 {
					return
				}
				slices.Sort(late)
				b.ReportMetric(float64(late[len(late)/2].Microseconds()), "p50-late-µs")
				b.ReportMetric(float64(late[len(late)*99/100].Microseconds()), "p99-late-µs")
			})
		}
	}
}
