package firehose

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	deliveries   *prometheus.CounterVec
	records      prometheus.Counter
	bytes        prometheus.Counter
	authFailures prometheus.Counter
	ackDuration  prometheus.Histogram
	duplicates   *prometheus.CounterVec
	inProgress   prometheus.Gauge
	limited      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "apigw_connector", "firehose"
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "deliveries_total", Help: "Firehose delivery requests answered, by HTTP status code."}, []string{"code"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_total", Help: "Firehose records received in well-formed deliveries."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_total", Help: "Delivery body bytes received on the wire (before content decoding)."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "auth_failures_total", Help: "Deliveries refused for a missing or wrong access key."}),
		ackDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "ack_duration_seconds", Help: "Time from a delivery's arrival to its 200 acknowledgement (every call settled).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "duplicates_suppressed_total", Help: "Retried work not done again: kind=request for deliveries already acknowledged, kind=call for calls already delivered."}, []string{"kind"}),
		inProgress: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "deliveries_in_progress", Help: "Deliveries being decoded or awaiting settlement."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "deliveries_limited_total", Help: "Deliveries refused or cut short by a per-delivery limit: limit=records, decompressed_bytes, body_read_timeout or deadline."}, []string{"limit"}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.records, m.bytes, m.authFailures, m.ackDuration, m.duplicates, m.inProgress, m.limited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.duplicates.WithLabelValues("request")
	m.duplicates.WithLabelValues("call")
	for _, l := range []string{"records", "decompressed_bytes", "body_read_timeout", "deadline"} {
		m.limited.WithLabelValues(l)
	}
	return m, nil
}
