package devnode

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason is why a message was rejected; its string is the metric label and the key
// in Stats.Rejects.
type Reason int

// Rejection reasons. Every one but ReasonPendingFull is answered 400.
const (
	ReasonMissingRequestID Reason = iota
	ReasonMissingForwardedHost
	ReasonMissingForwardedFor
	ReasonMissingConnectorType
	ReasonMissingConnectorVersion
	ReasonRepeatedHeader
	ReasonClientIPWithPort
	ReasonBadClientIP
	ReasonBadResponseCode
	ReasonBadResponseMethod
	ReasonUnexpectedBody
	ReasonBadPathPrefix
	ReasonResponseWithoutRequest
	ReasonDuplicateRequestID
	ReasonDuplicateResponse
	ReasonMismatchedResponse
	ReasonPendingFull // 503: too many request halves waiting; retry later
	ReasonConnectorInfo
	ReasonHost
	ReasonRemoteAddress
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonMissingRequestID:        "missing_request_id",
	ReasonMissingForwardedHost:    "missing_forwarded_host",
	ReasonMissingForwardedFor:     "missing_forwarded_for",
	ReasonMissingConnectorType:    "missing_connector_type",
	ReasonMissingConnectorVersion: "missing_connector_version",
	ReasonRepeatedHeader:          "repeated_header",
	ReasonClientIPWithPort:        "client_ip_with_port",
	ReasonBadClientIP:             "bad_client_ip",
	ReasonBadResponseCode:         "bad_response_code",
	ReasonBadResponseMethod:       "bad_response_method",
	ReasonUnexpectedBody:          "unexpected_body",
	ReasonBadPathPrefix:           "bad_path_prefix",
	ReasonResponseWithoutRequest:  "response_without_request",
	ReasonDuplicateRequestID:      "duplicate_request_id",
	ReasonDuplicateResponse:       "duplicate_response",
	ReasonMismatchedResponse:      "mismatched_response",
	ReasonPendingFull:             "pending_full",
	ReasonConnectorInfo:           "connector_info",
	ReasonHost:                    "host",
	ReasonRemoteAddress:           "remote_address",
}

// The node's connector-server metric names (Wallarm's metric reference), so
// that tools reading a real node's counters (apigw-connector probe) can be
// tested against devnode.
const (
	nodeMetricSeen     = "wallarm_gonode_http_connector_server_messages_seen_total"
	nodeMetricRejected = "wallarm_gonode_http_connector_server_messages_rejected_total"
	nodeMetricErrors   = "wallarm_gonode_http_connector_server_errors_total"
)

// nodeReason maps devnode's reasons onto the node's rejection reasons and
// error types where the node has one ("" = none).
func nodeReason(r Reason) (rejected, errType string) {
	switch r {
	case ReasonMissingConnectorType, ReasonMissingConnectorVersion, ReasonConnectorInfo:
		return "connector_info", ""
	case ReasonMissingForwardedHost, ReasonHost:
		return "host", ""
	case ReasonMissingForwardedFor, ReasonClientIPWithPort, ReasonBadClientIP, ReasonRemoteAddress:
		return "remote_address", ""
	case ReasonDuplicateRequestID:
		return "", "DuplicateReqId"
	case ReasonResponseWithoutRequest:
		return "", "FlowIsMissingRequest"
	}
	return "", ""
}

func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Stats are the server's counters since New.
type Stats struct {
	Requests  int64 `json:"requests"`  // request halves accepted
	Responses int64 `json:"responses"` // response halves accepted (each completes a call)
	Completed int64 `json:"completed"` // calls completed (request then response)
	// Duplicates counts request messages rejected because their id was pending or completed.
	Duplicates int64 `json:"duplicates"`
	// Pending is the number of request halves waiting for their response now.
	Pending int64 `json:"pending"`
	// MissingResponse counts request halves dropped after PendingTTL without a response
	// (the node's FlowIsMissingResponse).
	MissingResponse int64 `json:"missing_response"`
	// Failed counts messages answered with the injected failure status.
	Failed int64 `json:"failed"`
	// Forgotten counts completed calls dropped from memory beyond MaxCompleted.
	Forgotten int64 `json:"forgotten"`
	// Rejects counts rejected messages by reason (only reasons that occurred).
	Rejects map[string]int64 `json:"rejects"`
	// OwnHost counts request messages whose forwarded host is this server's
	// own listen address: the connector put the node's address where the
	// API's host belongs. OwnHostSeen is the last such host.
	OwnHost     int64  `json:"own_host"`
	OwnHostSeen string `json:"own_host_seen,omitempty"`
}

// Message kinds, the "kind" label of messages_total.
const (
	kindRequest  = 0
	kindResponse = 1
)

var kindNames = [2]string{"request", "response"}

type counters struct {
	requests, responses, completed, duplicates atomic.Int64
	missingResponse, failed, forgotten         atomic.Int64
	ownHost                                    atomic.Int64
	rejects                                    [numReasons]atomic.Int64
}

type metrics struct {
	messages  *prometheus.CounterVec
	completed prometheus.Counter
	rejected  *prometheus.CounterVec
	missing   prometheus.Counter
	// byCode caches messages_total children: label lookups hash strings, and this is
	// the hot path.
	byCode   [2][600]atomic.Pointer[prometheus.Counter]
	byReason [numReasons]prometheus.Counter

	nodeSeen     *prometheus.CounterVec // by type: request, response, health
	nodeRejected *prometheus.CounterVec // by reason
	nodeErrors   *prometheus.CounterVec // by type
}

const metricsNamespace = "apigw_devnode"

func newMetrics(pending func() float64) (*metrics, []prometheus.Collector) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "messages_total",
			Help: "Messages received, by kind (request, response) and reply status code.",
		}, []string{"kind", "code"}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "calls_completed_total",
			Help: "Calls completed: a request message followed by its response message.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rejected_total",
			Help: "Messages rejected, by reason.",
		}, []string{"reason"}),
		missing: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "flows_missing_response_total",
			Help: "Request halves dropped after the pending TTL without a response message.",
		}),
	}
	for r := Reason(0); r < numReasons; r++ {
		m.byReason[r] = m.rejected.WithLabelValues(r.String())
	}
	m.nodeSeen = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nodeMetricSeen,
		Help: "Node-compatible: messages seen, by type (request, response, health)."}, []string{"type"})
	m.nodeRejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nodeMetricRejected,
		Help: "Node-compatible: messages rejected, by reason (connector_info, host, remote_address)."}, []string{"reason"})
	m.nodeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nodeMetricErrors,
		Help: "Node-compatible: connector errors, by type (DuplicateReqId, FlowIsMissingRequest)."}, []string{"type"})
	pendingGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "pending",
		Help: "Request halves waiting for their response message.",
	}, pending)
	return m, []prometheus.Collector{m.messages, m.completed, m.rejected, m.missing, pendingGauge, m.nodeSeen, m.nodeRejected, m.nodeErrors}
}

func (m *metrics) message(kind, code int) {
	if code < 0 || code >= len(m.byCode[kind]) {
		m.messages.WithLabelValues(kindNames[kind], strconv.Itoa(code)).Inc()
		return
	}
	slot := &m.byCode[kind][code]
	c := slot.Load()
	if c == nil {
		child := m.messages.WithLabelValues(kindNames[kind], strconv.Itoa(code))
		slot.CompareAndSwap(nil, &child)
		c = slot.Load()
	}
	(*c).Inc()
}
