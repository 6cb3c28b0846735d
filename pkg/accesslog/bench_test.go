package accesslog_test

import (
	"testing"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// BenchmarkParse parses realistic access-log lines (documented JSON format,
// 5% errors), one line per op.
func BenchmarkParse(b *testing.B) {
	g := traffic.New(traffic.DefaultOptions())
	lines := make([][]byte, 1024)
	for i := range lines {
		lines[i] = g.Line()
	}
	p, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.ProcessCPU()
	for i := range b.N {
		if _, err := p.Parse(lines[i&1023]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(b.N)/(testkit.ProcessCPU()-cpu0).Seconds(), "lines/cpu-s")
}
