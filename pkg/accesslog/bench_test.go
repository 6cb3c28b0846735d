package accesslog_test

import (
	"syscall"
	"testing"
	"time"

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
	cpu0 := cpuTime()
	for i := range b.N {
		if _, err := p.Parse(lines[i&1023]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "lines/cpu-s")
}

// cpuTime is the process CPU time: steadier than wall time on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
