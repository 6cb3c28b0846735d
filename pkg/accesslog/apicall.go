// Package accesslog turns one API Gateway access-log line (JSON) into an APICall.
package accesslog

import "time"

// APICall is the metadata of one API Gateway call, as its access-log line tells it.
// Fields the line does not carry (or carries as "-") are zero; Has* flags tell a
// zero value from a missing one where zero is meaningful.
type APICall struct {
	RequestID string // $context.requestId (a client can set it: not unique)
	// ExtendedRequestID is $context.extendedRequestId (REST APIs only), which
	// API Gateway generates and a client cannot override.
	ExtendedRequestID string
	// NodeID is the id the node receives for this call: unique per log event,
	// the same when that event is delivered again. Set by the pipeline; empty
	// means RequestID is sent as is.
	NodeID        string
	Method        string // $context.httpMethod, upper case
	Host          string // $context.domainName
	Path          string // $context.path as called (REST default endpoint: includes the stage)
	RouteTemplate string // $context.resourcePath, or the path part of $context.routeKey
	Protocol      string // e.g. HTTP/1.1
	Status        int    // 100-599

	ResponseLatency       time.Duration
	HasResponseLatency    bool
	IntegrationLatency    time.Duration
	HasIntegrationLatency bool
	IntegrationStatus     int // 0 when absent
	ResponseLength        int64
	HasResponseLength     bool

	RequestTime time.Time // from requestTimeEpoch (ms) or the CLF requestTime; zero when absent

	// Where the line came from, set by the pipeline from the subscription
	// envelope (empty for plain lines): the log group's account and name, and
	// the CloudWatch Logs event timestamp.
	Account  string
	LogGroup string
	LogTime  time.Time

	SourceIP     string // bare IP
	UserAgent    string
	Stage        string
	APIID        string // $context.apiId when logged
	ErrorMessage string // unescaped
}
