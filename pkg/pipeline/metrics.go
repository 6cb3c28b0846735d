package pipeline

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batches         prometheus.Counter
	records         prometheus.Counter
	events          prometheus.Counter
	controlMessages prometheus.Counter
	decodeErrors    *prometheus.CounterVec
	calls           prometheus.Counter
	parseErrors     *prometheus.CounterVec
	noHost          prometheus.Counter // parseErrors{reason="no_host"}
	results         *prometheus.CounterVec
	result          [resultAbandoned + 1]prometheus.Counter // resolved once: a label lookup per call costs more than the count
	filtered        prometheus.Counter
	duplicate       prometheus.Counter
	buffered        prometheus.Gauge
	settleDuration  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "apigw_connector"
	m := &metrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "batches_total",
			Help: "Batches (Kinesis records, Firehose requests, file chunks, Lambda events) submitted."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "records_total",
			Help: "Source records handed to the decoder."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "events_total",
			Help: "Log events (access-log lines) decoded from records."}),
		controlMessages: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "control_messages_total",
			Help: "CloudWatch Logs CONTROL_MESSAGE documents acknowledged and skipped."}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "errors_total",
			Help: "Records skipped because they could not be decoded, by reason."}, []string{"reason"}),
		calls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "parse", Name: "calls_total",
			Help: "Access-log lines parsed into API calls."}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "parse", Name: "errors_total",
			Help: "Log lines skipped because they are not an API call, or are calls without a host (no_host), by reason."}, []string{"reason"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "calls_total",
			Help: "Calls by final result: delivered, rejected (permanently, by the node), abandoned (shutdown or deadline), filtered, duplicate."}, []string{"result"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "pipeline", Name: "calls_buffered",
			Help: "Parsed calls waiting for a forwarding slot (bounded by pipeline.max_buffered_calls)."}),
		settleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "pipeline", Name: "batch_settle_duration_seconds",
			Help:    "Time from a batch's submission until every call of it settled.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
	}
	for r, label := range resultLabel {
		m.result[r] = m.results.WithLabelValues(label)
	}
	m.filtered = m.results.WithLabelValues("filtered")
	m.noHost = m.parseErrors.WithLabelValues(ReasonNoHost)
	m.duplicate = m.results.WithLabelValues("duplicate")
	for _, c := range []prometheus.Collector{m.batches, m.records, m.events, m.controlMessages, m.decodeErrors, m.calls, m.parseErrors, m.results, m.buffered, m.settleDuration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
