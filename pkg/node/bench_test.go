package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/leastnode"
	"github.com/wallarm/apigw-connector/internal/testenv/devnodetest"
	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// BenchmarkDeliver forwards calls to an in-process loopback node stand-in from 64
// concurrent callers (the default node.concurrency), both ends on this machine.
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	const callers = 64
	c, _ := testClient(b, srv.URL, func(c *Config) { c.Concurrency = callers })
	call := sampleCall()
	// Cancelable like the pipeline's: net/http links a child context to it per message.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	b.ReportAllocs()
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Deliver(ctx, call); err != nil {
				b.Error(err)
				return
			}
		}
	})
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "calls/s")
	b.ReportMetric(float64(2*b.N)/sec, "msgs/s")
}

// BenchmarkNetHTTPFloor is the same exchange (two messages per call, same headers)
// with a bare net/http transport and no retry logic or metrics: the floor Deliver is
// measured against on a machine whose load varies.
func BenchmarkNetHTTPFloor(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	const callers = 64
	tr := &http.Transport{MaxConnsPerHost: callers, MaxIdleConnsPerHost: callers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	call := sampleCall()
	hdr := http.Header{
		"X-Wallarm-Request-Id": {call.RequestID}, "X-Wallarm-Forwarded-Host": {call.Host},
		"X-Wallarm-Forwarded-For": {call.SourceIP}, "X-Wallarm-Connector-Type": {"apigw-connector"},
		"X-Wallarm-Connector-Version": {"1.0.0"}, "User-Agent": {call.UserAgent},
	}
	send := func(method string) {
		req, _ := http.NewRequest(method, srv.URL+call.Path, nil)
		req.Header = hdr
		req.Host = call.Host
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Error(err)
			return
		}
		resp.Body.Close()
	}
	b.ReportAllocs()
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			send(http.MethodGet)
			send(http.MethodPost)
		}
	})
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "calls/s")
	b.ReportMetric(float64(2*b.N)/sec, "msgs/s")
}

// BenchmarkLatencyBound delivers 5,000 calls from 64 callers (the default
// node.concurrency) to a node that answers every message after a fixed
// latency, and reports calls/s beside the limit concurrency / (2 x latency):
// two exchanges per call, one after the other. One op is the 5,000 calls; run
// with -benchtime 1x. The node is devnode, or the least node (internal/leastnode),
// which answers a connection's messages in turn as devnode does but spends next
// to no CPU: devnode's own CPU per message, on the same cores, delays replies
// under 64 calls in flight.
func BenchmarkLatencyBound(b *testing.B) {
	for _, nodeKind := range []string{"devnode", "least"} {
		for _, lat := range []time.Duration{time.Millisecond, 5 * time.Millisecond} {
			for _, depth := range []int{1, DefaultPipelineDepth} {
				b.Run(fmt.Sprintf("node=%s/latency=%s/depth=%d", nodeKind, lat, depth), func(b *testing.B) {
					benchLatency(b, nodeKind, lat, depth)
				})
			}
		}
	}
}

func benchLatency(b *testing.B, nodeKind string, lat time.Duration, depth int) {
	const callers, calls = 64, 5000
	var url string
	if nodeKind == "least" {
		ln, err := leastnode.Start("127.0.0.1:0", leastnode.Options{Latency: lat})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(ln.Close)
		url = ln.URL()
	} else {
		opts := devnode.DefaultOptions()
		opts.Latency = lat
		_, url = devnodetest.Start(b, opts)
	}
	c, _ := testClient(b, url, func(c *Config) {
		c.Concurrency = callers
		c.PipelineDepth = depth
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var next atomic.Int64
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(calls)*int64(b.N) || ctx.Err() != nil {
						return
					}
					call := sampleCall()
					call.RequestID = "lat-" + strconv.FormatInt(i, 10)
					if err := c.Deliver(ctx, call); err != nil {
						b.Error(err)
						return
					}
					if i%calls == 0 {
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(start)
	}
	rate := float64(calls*b.N) / elapsed.Seconds()
	limit := float64(callers) / (2 * lat.Seconds())
	b.ReportMetric(rate, "calls/s")
	b.ReportMetric(100*rate/limit, "%limit")
}
