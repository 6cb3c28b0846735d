package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
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
