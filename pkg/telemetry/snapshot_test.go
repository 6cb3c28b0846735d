package telemetry

import (
	"errors"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSnapshotSumsAndSplitsSeries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_calls_total"}, []string{"result"})
	buffered := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_buffered"})
	seen := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "x_seen"}, func() float64 { return 4 })
	reg.MustRegister(calls, buffered, seen)
	calls.WithLabelValues("delivered").Add(7)
	calls.WithLabelValues("filtered").Add(2)
	calls.WithLabelValues("duplicate") // zero: left out of ByLabel
	buffered.Set(3)

	s := Read(reg)
	for _, tc := range []struct {
		name, label, value string
		want               float64
	}{
		{"x_calls_total", "", "", 9},
		{"x_calls_total", "result", "filtered", 2},
		{"x_calls_total", "result", "nothing", 0},
		{"x_buffered", "", "", 3},
		{"x_seen", "", "", 4},
		{"x_missing", "", "", 0},
	} {
		if got := s.Sum(tc.name, tc.label, tc.value); got != tc.want {
			t.Errorf("Sum(%s, %s=%s) = %v, want %v", tc.name, tc.label, tc.value, got, tc.want)
		}
	}
	if got, want := s.ByLabel("x_calls_total", "result"), map[string]float64{"delivered": 7, "filtered": 2}; !maps.Equal(got, want) {
		t.Errorf("ByLabel = %v, want %v", got, want)
	}
}

type brokenGatherer struct{}

func (brokenGatherer) Gather() ([]*dto.MetricFamily, error) { return nil, errors.New("broken") }

func TestSnapshotOfAnUnreadableRegistryIsEmpty(t *testing.T) {
	t.Parallel()
	if got := Read(brokenGatherer{}).Sum("anything", "", ""); got != 0 {
		t.Fatalf("Sum = %v, want 0", got)
	}
}
