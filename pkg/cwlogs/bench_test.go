package cwlogs_test

import (
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// benchRecords are realistic subscription records: 20-60 access-log events
// each, 5% errors, gzip as CloudWatch Logs writes them.
func benchRecords(b *testing.B) ([][]byte, int, int64) {
	b.Helper()
	o := traffic.DefaultOptions()
	o.APIs, o.EndpointsPerAPI = 4, 12
	recs := traffic.New(o).Records(200, 20, 60)
	data := make([][]byte, len(recs))
	events := 0
	var raw int64
	for i, r := range recs {
		data[i] = r.Data
		events += len(r.Calls)
		raw += int64(len(r.Data))
	}
	return data, events, raw
}

// report adds events/s (wall clock) and events/cpu-s (process CPU time,
// steadier on a shared machine: time spent waiting for a core is not counted).
func report(b *testing.B, events int, cpu0 time.Duration) {
	n := float64(events) * float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(n/(testkit.ProcessCPU()-cpu0).Seconds(), "events/cpu-s")
}

// BenchmarkGunzipOnly is the floor: gunzip (the decoder's inflater) the same records with a reused
// reader and buffer, discarding the output.
func BenchmarkGunzipOnly(b *testing.B) {
	data, events, raw := benchRecords(b)
	zr := new(gzip.Reader)
	buf := make([]byte, 1<<20)
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.ProcessCPU()
	for range b.N {
		for _, d := range data {
			if err := zr.Reset(&byteReader{b: d}); err != nil {
				b.Fatal(err)
			}
			for {
				_, err := zr.Read(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	report(b, events, cpu0)
}

// byteReader is a minimal io.ByteReader so gzip does not wrap it in bufio.
type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func (r *byteReader) ReadByte() (byte, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	c := r.b[r.i]
	r.i++
	return c, nil
}

func BenchmarkDecode(b *testing.B) {
	data, events, raw := benchRecords(b)
	d := cwlogs.NewDecoder(cwlogs.Options{})
	n := 0
	fn := func(*cwlogs.Meta, *cwlogs.Event) { n++ }
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.ProcessCPU()
	for range b.N {
		for _, rec := range data {
			if _, err := d.Decode(rec, fn); err != nil {
				b.Fatal(err)
			}
		}
	}
	if n != events*b.N {
		b.Fatalf("decoded %d events, want %d", n, events*b.N)
	}
	report(b, events, cpu0)
}

func BenchmarkDecodeParse(b *testing.B) {
	data, events, raw := benchRecords(b)
	d := cwlogs.NewDecoder(cwlogs.Options{})
	p, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		b.Fatal(err)
	}
	var calls []accesslog.APICall
	fn := func(_ *cwlogs.Meta, ev *cwlogs.Event) {
		c, err := p.Parse(ev.Message)
		if err != nil {
			b.Fatal(err)
		}
		calls = append(calls, c)
	}
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.ProcessCPU()
	for range b.N {
		for _, rec := range data {
			calls = calls[:0]
			if _, err := d.Decode(rec, fn); err != nil {
				b.Fatal(err)
			}
		}
	}
	report(b, events, cpu0)
}
