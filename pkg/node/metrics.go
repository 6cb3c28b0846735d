package node

import "github.com/prometheus/client_golang/prometheus"

const (
	kindRequest  = "request"
	kindResponse = "response"
	kindProbe    = "probe" // the health check (not a metric label)
)

type metrics struct {
	sent     *prometheus.CounterVec // kind, code
	retries  *prometheus.CounterVec // reason
	rejected *prometheus.CounterVec // code
	errors   *prometheus.CounterVec // reason
	// unsendable counts calls not sent at all, by why: the rejected_total{code="invalid"} detail.
	unsendable *prometheus.CounterVec // reason
	// alreadyHeld counts calls the node held before they were delivered (replays).
	alreadyHeld prometheus.Counter
	inFlight    prometheus.Gauge
	duration    prometheus.Histogram
	up          prometheus.Gauge

	// The hot path's children, resolved once: a label lookup hashes strings.
	sentReq200, sentResp200 prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "apigw_connector", "node"
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_sent_total",
			Help: "Messages the node replied to, by message kind (request|response) and reply status code.",
		}, []string{"kind", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Message attempts that will be retried, by reason (http_<code>, timeout, connection_refused, connection_reset, protocol, tls, dns, connection).",
		}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_total",
			Help: "Calls permanently rejected (not retried), by reply status code (invalid = not sendable).",
		}, []string{"code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Message attempts that got no HTTP reply, by reason.",
		}, []string{"reason"}),
		unsendable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "unsendable_total",
			Help: "Calls not sent because they cannot be (also in rejected_total{code=\"invalid\"}), by reason (no_host, invalid_host, no_request_id, invalid_method, invalid_path).",
		}, []string{"reason"}),
		alreadyHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "already_held_total",
			Help: "Calls whose delivery found the node holding them already (a replay, a redelivery): delivered, nothing new sent.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "calls_in_flight",
			Help: "Calls being delivered (including those waiting to retry).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "delivery_duration_seconds",
			Help:    "Time from the start of a call's delivery until the node accepted both messages.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "up",
			Help: "1 when the node answered the last probe or message (status below 500), else 0.",
		}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.retries, m.rejected, m.errors, m.unsendable, m.alreadyHeld, m.inFlight, m.duration, m.up} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.sentReq200 = m.sent.WithLabelValues(kindRequest, "200")
	m.sentResp200 = m.sent.WithLabelValues(kindResponse, "200")
	return m, nil
}

func (m *metrics) countSent(kind string, code int) {
	if code == 200 {
		if kind == kindRequest {
			m.sentReq200.Inc()
		} else {
			m.sentResp200.Inc()
		}
		return
	}
	m.sent.WithLabelValues(kind, statusText(code)).Inc()
}
