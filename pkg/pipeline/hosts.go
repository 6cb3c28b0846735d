package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// ReasonNoHost labels calls skipped because no host could be named for them.
const ReasonNoHost = "no_host"

// HostRules name the API's host for lines without a domainName (AWS's own
// example formats have none). They are the access_log host settings; the
// node's own address is never a fallback: it would put every API of the
// inventory under the node's name.
type HostRules struct {
	// DefaultHost is the host of every line without one.
	DefaultHost string
	// HostsByLogGroup maps a CloudWatch Logs log group to the host of its
	// lines; it wins over DefaultHost.
	HostsByLogGroup map[string]string
	// Region, with an API id (the line's apiId, or an execution-log group
	// name), gives {apiId}.execute-api.{region}.amazonaws.com.
	Region string
}

// Validate checks the hosts and the region; messages name the setting.
func (h HostRules) Validate() error {
	var errs []error
	if h.DefaultHost != "" && !validHost(h.DefaultHost) {
		errs = append(errs, fmt.Errorf("access_log.default_host %q is not a host name (host or host:port): set access_log.default_host (env APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST) to the API's domain, e.g. api.example.com", h.DefaultHost))
	}
	for _, g := range slices.Sorted(maps.Keys(h.HostsByLogGroup)) {
		host := h.HostsByLogGroup[g]
		if strings.TrimSpace(g) == "" {
			errs = append(errs, fmt.Errorf("access_log.hosts_by_log_group has an empty log group name: write log_group: host (env APIGW_CONNECTOR_ACCESS_LOG_HOSTS_BY_LOG_GROUP=group=host,group2=host2)"))
		}
		if !validHost(host) {
			errs = append(errs, fmt.Errorf("access_log.hosts_by_log_group[%q] = %q is not a host name (host or host:port): set it to the API's domain, e.g. api.example.com (env APIGW_CONNECTOR_ACCESS_LOG_HOSTS_BY_LOG_GROUP=group=host,group2=host2)", g, host))
		}
	}
	if h.Region != "" && !validLabel(h.Region) {
		errs = append(errs, fmt.Errorf("access_log.region %q is not an AWS region such as us-east-1: set access_log.region (env APIGW_CONNECTOR_ACCESS_LOG_REGION), or AWS_REGION", h.Region))
	}
	return errors.Join(errs...)
}

// executionLogGroupPrefix starts the log group API Gateway creates for a REST
// API stage's execution logs: API-Gateway-Execution-Logs_{restApiId}/{stage}.
const executionLogGroupPrefix = "API-Gateway-Execution-Logs_"

// apiIDOfLogGroup returns the API id a log group name documents, if any.
func apiIDOfLogGroup(group string) string {
	rest, ok := strings.CutPrefix(group, executionLogGroupPrefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// hostResolver applies HostRules and warns once per log group whose lines
// have no host.
type hostResolver struct {
	rules HostRules
	log   *slog.Logger

	mu     sync.Mutex
	warned map[string]bool
}

// maxWarnedGroups bounds the memory of warned log groups; past it, warnings stop.
const maxWarnedGroups = 4096

// resolve sets call.Host when the line has none, or reports false.
func (r *hostResolver) resolve(call *accesslog.APICall, logGroup string) bool {
	if validHost(call.Host) {
		return true
	}
	if h := r.rules.HostsByLogGroup[logGroup]; h != "" && logGroup != "" {
		call.Host = h
		return true
	}
	if r.rules.DefaultHost != "" {
		call.Host = r.rules.DefaultHost
		return true
	}
	id := call.APIID
	if id == "" {
		id = apiIDOfLogGroup(logGroup)
	}
	if r.rules.Region != "" && validAPIID(id) {
		call.Host = id + ".execute-api." + r.rules.Region + ".amazonaws.com"
		return true
	}
	r.warnOnce(logGroup, call.Host != "")
	return false
}

func (r *hostResolver) warnOnce(logGroup string, invalid bool) {
	r.mu.Lock()
	first := !r.warned[logGroup] && len(r.warned) < maxWarnedGroups
	if first {
		r.warned[logGroup] = true
	}
	r.mu.Unlock()
	if !first {
		return
	}
	what := "have no domainName"
	if invalid {
		what = "have a domainName that is not a host name"
	}
	group := logGroup
	if group == "" {
		group = "(none: extracted lines or a file)"
	}
	r.log.Warn("skipping calls whose access-log lines "+what+" (counted as parse errors, reason no_host; warned once per log group): "+
		`add "domainName":"$context.domainName" to the stage's access-log format (`+accesslog.FormatDocs+`), `+
		"or set access_log.hosts_by_log_group or access_log.default_host (env APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST), "+
		"or log $context.apiId and set access_log.region (or AWS_REGION)",
		"log_group", group)
}

// validHost accepts what the node client sends as a host: host or host:port
// in the characters of a URI authority, no user info.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// validLabel accepts a lower-case DNS label such as a region (us-east-1).
func validLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validAPIID accepts an API Gateway API id: lower-case letters and digits.
func validAPIID(s string) bool { return validLabel(s) && !strings.Contains(s, "-") }
