package devnode

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// discardWriter is a minimal ResponseWriter, so the benchmark measures the handler.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkHandler measures the handler alone: one op is one call (two messages).
func BenchmarkHandler(b *testing.B) {
	s := New(DefaultOptions(), nil, nil)
	u, _ := url.Parse("http://node/pets/42")
	base := http.Header{}
	for k, v := range requestHeaders("") {
		base.Set(k, v)
	}
	var next atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			id := "bench-" + strconv.FormatInt(next.Add(1), 10)
			h := base.Clone()
			h[s.hRequestID] = []string{id}
			req := (&http.Request{Method: http.MethodGet, URL: u, Header: h, Host: "node"}).WithContext(ctx)
			clear(w.h)
			s.Handler().ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("request: %d", w.code)
			}
			h = h.Clone()
			h[s.hRespCode] = []string{"200"}
			req = (&http.Request{Method: http.MethodPost, URL: u, Header: h, Host: "node"}).WithContext(ctx)
			clear(w.h)
			s.Handler().ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("response: %d", w.code)
			}
		}
	})
	b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "msgs/s")
	if st := s.Stats(); st.Completed != int64(b.N) {
		b.Fatalf("completed %d of %d", st.Completed, b.N)
	}
}

// BenchmarkLoopback measures full HTTP over loopback with keep-alive clients.
func BenchmarkLoopback(b *testing.B) {
	n := startNode(b, DefaultOptions())
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.call(b, "lb-"+strconv.FormatInt(next.Add(1), 10), "GET", "/pets/42", "200")
		}
	})
	b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "msgs/s")
}
