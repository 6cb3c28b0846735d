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

	"github.com/wallarm/apigw-connector/internal/delay"
)

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
				mk := map[string]func() delay.Delayer{"default": delay.New, "timers": func() delay.Delayer { return delay.Timers{} }}[name]
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
