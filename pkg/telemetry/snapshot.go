package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Snapshot is a registry's metric families read once, so that several figures
// taken from it agree with each other.
type Snapshot []*dto.MetricFamily

// Read gathers g; an unreadable registry gives an empty snapshot (every figure 0).
func Read(g prometheus.Gatherer) Snapshot {
	mfs, err := g.Gather()
	if err != nil {
		return nil
	}
	return mfs
}

// Sum adds the values of a counter's, gauge's or untyped metric's series (a
// scraped text exposition may be untyped): all of them when label is "", else
// those whose label has value.
func (s Snapshot) Sum(name, label, value string) float64 {
	var sum float64
	for _, mf := range s {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m.GetLabel(), label, value) {
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return sum
}

// ByLabel is a counter's non-zero series by the value of label.
func (s Snapshot) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range s {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			if v == 0 {
				continue
			}
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] += v
				}
			}
		}
	}
	return out
}

func hasLabel(lps []*dto.LabelPair, name, value string) bool {
	for _, lp := range lps {
		if lp.GetName() == name {
			return lp.GetValue() == value
		}
	}
	return false
}
