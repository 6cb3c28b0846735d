package file

import (
	"bytes"
	"context"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// BenchmarkReadExport streams a gzip export of concatenated documents
// through Read and decodes every batch as the pipeline does: the replay
// input path without delivery, in events/s.
func BenchmarkReadExport(b *testing.B) {
	g := traffic.New(traffic.Options{Seed: 5, APIs: 4, EndpointsPerAPI: 8})
	var plain bytes.Buffer
	events := 0
	for range 40 {
		evs, _ := g.Events(nil, 500)
		plain.Write(traffic.Envelope("g", "s", evs))
		plain.WriteByte('\n')
		events += len(evs)
	}
	data := traffic.Gzip(plain.Bytes())
	d := cwlogs.NewDecoder(cwlogs.Options{})
	n := 0
	emit := func(bt pipeline.Batch) error {
		for _, r := range bt.Records {
			n += d.DecodeEach(r.Data, func(*cwlogs.Meta, *cwlogs.Event) {}, nil).Events
		}
		return nil
	}
	b.SetBytes(int64(plain.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(context.Background(), "x", bytes.NewReader(data), DefaultOptions(), emit); err != nil {
			b.Fatal(err)
		}
	}
	if n != events*b.N {
		b.Fatalf("decoded %d events, want %d", n, events*b.N)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
