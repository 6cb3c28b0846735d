package pipeline

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

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
	callAge         prometheus.Histogram
	accountCalls    *prometheus.CounterVec
	accounts        accountLabels
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "apigw_connector"
	m := &metrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "batches_total",
			Help: "Batches (Kinesis records, Firehose delivery chunks, file chunks, Lambda events) submitted."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "records_total",
			Help: "Source records handed to the decoder."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "events_total",
			Help: "Log events (access-log lines) decoded from records."}),
		controlMessages: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "control_messages_total",
			Help: "CloudWatch Logs CONTROL_MESSAGE documents acknowledged and skipped."}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "decode", Name: "errors_total",
			Help: "Documents, gzip members or damaged stretches of records skipped as undecodable, by reason; the rest of each record still flows."}, []string{"reason"}),
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
		callAge: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "pipeline", Name: "call_age_seconds",
			Help:    "Age of a call when the node accepted it: acceptance time minus the access log's request time (else the CloudWatch Logs event timestamp). API Discovery needs near real time input.",
			Buckets: []float64{1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}}),
		accountCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "account_calls_total",
			Help: "Calls parsed, by the AWS account that owns their log group (the subscription envelope's owner; \"none\" without an envelope, \"other\" past 1000 accounts)."}, []string{"account"}),
	}
	for r, label := range resultLabel {
		m.result[r] = m.results.WithLabelValues(label)
	}
	m.filtered = m.results.WithLabelValues("filtered")
	m.noHost = m.parseErrors.WithLabelValues(ReasonNoHost)
	m.duplicate = m.results.WithLabelValues("duplicate")
	for _, c := range []prometheus.Collector{m.batches, m.records, m.events, m.controlMessages, m.decodeErrors, m.calls, m.parseErrors, m.results, m.buffered, m.settleDuration, m.callAge, m.accountCalls} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// maxAccounts bounds the account label: an organisation has at most a few
// thousand accounts, and a hostile envelope must not grow the series count.
const maxAccounts = 1000

// accountLabels resolves account counters once per account.
type accountLabels struct {
	mu sync.Mutex
	m  map[string]prometheus.Counter
}

func (m *metrics) accountCall(owner string) {
	if owner == "" {
		owner = "none"
	}
	a := &m.accounts
	a.mu.Lock()
	c, ok := a.m[owner]
	if !ok {
		if a.m == nil {
			a.m = map[string]prometheus.Counter{}
		}
		label := owner
		if len(a.m) >= maxAccounts || !isAccountID(owner) && owner != "none" {
			label = "other"
		}
		c = m.accountCalls.WithLabelValues(label)
		if len(a.m) < maxAccounts {
			a.m[owner] = c
		}
	}
	a.mu.Unlock()
	c.Inc()
}

// isAccountID: AWS account ids are 12 digits.
func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
