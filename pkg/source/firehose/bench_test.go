package firehose

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// BenchmarkDelivery1MiB posts ~1 MiB gzip-encoded Firehose deliveries (each
// record a gzip CloudWatch Logs document of 100 events) through the real
// chain into an in-process devnode over loopback, one at a time as a single
// Firehose delivery stream does, and reports calls/s and ack latency.
func BenchmarkDelivery1MiB(b *testing.B) {
	cfg := testConfig()
	cfg.DedupCallIDs = 0 // every iteration carries fresh calls
	e := newEnv(b, cfg)
	o := traffic.DefaultOptions()
	o.Seed = 42
	g := traffic.New(o)
	build := func(id string) ([]byte, int) {
		var recs [][]byte
		calls, size := 0, 0
		// Records are gzip already; base64 then body gzip roughly cancel out.
		for size < 1<<20-32<<10 {
			r := g.Records(1, 100, 100)[0]
			recs = append(recs, r.Data)
			calls += len(r.Calls)
			size += len(r.Data)
		}
		return gz(firehoseBody(id, recs)), calls
	}
	lat := make([]time.Duration, 0, b.N)
	totalCalls, wire := 0, 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := "bench-" + strconv.Itoa(i)
		body, calls := build(id)
		totalCalls += calls
		wire += len(body)
		b.StartTimer()
		start := time.Now()
		r := e.post(delivery{id: id, body: body, header: map[string]string{"Content-Encoding": "gzip"}})
		lat = append(lat, time.Since(start))
		if r.status != http.StatusOK {
			b.Fatalf("delivery %d: status %d (%s)", i, r.status, r.raw)
		}
	}
	b.StopTimer()
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	slices.Sort(lat)
	b.SetBytes(int64(wire / b.N))
	b.ReportMetric(float64(totalCalls)/sum.Seconds(), "calls/s")
	b.ReportMetric(float64(totalCalls)/float64(b.N), "calls/delivery")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ack-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ack-ms")
}
