// Package devnode is a local stand-in for the Wallarm Native Node in connector-server
// mode. It speaks the `raw` profile of the wire contract (two messages per API call,
// paired by request id) and checks it more strictly than a real node does, so tests
// and demos see every protocol mistake as a 400 with a named reason. It also builds a
// small API inventory (host, method, path template) from the completed calls.
//
// It deliberately knows nothing of the connector's internals: header names and
// defaults are its own, taken from the contract document.
package devnode

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"
)

// Default header names, as in the contract's `raw` profile.
const (
	DefaultRequestIDHeader        = "X-Wallarm-Request-Id"
	DefaultForwardedHostHeader    = "X-Wallarm-Forwarded-Host"
	DefaultForwardedForHeader     = "X-Wallarm-Forwarded-For"
	DefaultConnectorTypeHeader    = "X-Wallarm-Connector-Type"
	DefaultConnectorVersionHeader = "X-Wallarm-Connector-Version"
	DefaultResponseCodeHeader     = "X-Wallarm-Response-Code"

	// DefaultHealthPath is the node's optional health endpoint on the connector port.
	DefaultHealthPath = "/wallarm-external-health"
)

// Headers are the names of the connector metadata headers devnode reads. No public
// node setting renames them; they are settings here so that devnode can follow
// whatever shape a user settles on for their node (see apigw-connector capture).
type Headers struct {
	RequestID        string `yaml:"request_id"`
	ForwardedHost    string `yaml:"forwarded_host"`
	ForwardedFor     string `yaml:"forwarded_for"`
	ConnectorType    string `yaml:"connector_type"`
	ConnectorVersion string `yaml:"connector_version"`
	ResponseCode     string `yaml:"response_code"`
}

// DefaultHeaders returns the contract's default header names.
func DefaultHeaders() Headers {
	return Headers{
		RequestID:        DefaultRequestIDHeader,
		ForwardedHost:    DefaultForwardedHostHeader,
		ForwardedFor:     DefaultForwardedForHeader,
		ConnectorType:    DefaultConnectorTypeHeader,
		ConnectorVersion: DefaultConnectorVersionHeader,
		ResponseCode:     DefaultResponseCodeHeader,
	}
}

// Options configure a Server. Start from DefaultOptions: New fills empty names and
// zero sizes with defaults, but RequireConnectorHeaders is taken as given.
type Options struct {
	Headers Headers `yaml:"headers"`
	// ResponseMethod is the method every response message must use.
	ResponseMethod string `yaml:"response_method"`
	// PathPrefix, when set, must begin every message path; it is stripped before the
	// path enters the inventory.
	PathPrefix string `yaml:"path_prefix"`
	// FailFor makes the server answer FailStatus to every message (and to the health
	// check) for this long after New/Start, for fault drills.
	FailFor    time.Duration `yaml:"fail_for"`
	FailStatus int           `yaml:"fail_status"`
	// Latency is added to every reply to a message or health check.
	Latency time.Duration `yaml:"latency"`
	// RequireConnectorHeaders rejects messages without connector type and version
	// (a real node counts such rejections as reason connector_info).
	RequireConnectorHeaders bool `yaml:"require_connector_headers"`
	// AllowedConnectorTypes, when set, rejects messages whose connector type is
	// not listed (counted as the node counts it: reason connector_info).
	AllowedConnectorTypes []string `yaml:"allowed_connector_types"`
	// AllowedHosts, when set, rejects messages whose original host is not
	// listed, as a node's connector.allowed_hosts does (reason host).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// AllowedNetworks, when set, rejects messages from connector addresses
	// outside these CIDRs, as a node's connector.allowed_networks does
	// (reason remote_address).
	AllowedNetworks []string `yaml:"allowed_networks"`
	// PendingTTL is how long a request half waits for its response half; after it the
	// flow is dropped and counted as missing its response.
	PendingTTL time.Duration `yaml:"pending_ttl"`
	// MaxPending bounds the request halves waiting for their response; beyond it
	// request messages get 503 (retryable), so memory stays bounded.
	MaxPending int `yaml:"max_pending"`
	// MaxCompleted bounds how many completed calls are remembered for Calls,
	// DeliveredIDs and duplicate detection; the oldest are forgotten first.
	MaxCompleted int `yaml:"max_completed"`
}

// DefaultOptions returns the contract's defaults and strict checking.
func DefaultOptions() Options {
	return Options{
		Headers:                 DefaultHeaders(),
		ResponseMethod:          http.MethodPost,
		FailStatus:              http.StatusServiceUnavailable,
		RequireConnectorHeaders: true,
		PendingTTL:              30 * time.Second,
		MaxPending:              1 << 18,
		MaxCompleted:            1 << 20,
	}
}

// withDefaults fills unset fields (except the boolean) from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	fill := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	fill(&o.Headers.RequestID, d.Headers.RequestID)
	fill(&o.Headers.ForwardedHost, d.Headers.ForwardedHost)
	fill(&o.Headers.ForwardedFor, d.Headers.ForwardedFor)
	fill(&o.Headers.ConnectorType, d.Headers.ConnectorType)
	fill(&o.Headers.ConnectorVersion, d.Headers.ConnectorVersion)
	fill(&o.Headers.ResponseCode, d.Headers.ResponseCode)
	fill(&o.ResponseMethod, d.ResponseMethod)
	if o.FailStatus == 0 {
		o.FailStatus = d.FailStatus
	}
	if o.PendingTTL == 0 {
		o.PendingTTL = d.PendingTTL
	}
	if o.MaxPending == 0 {
		o.MaxPending = d.MaxPending
	}
	if o.MaxCompleted == 0 {
		o.MaxCompleted = d.MaxCompleted
	}
	return o
}

// Validate checks the options after defaults are applied.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	names := map[string]string{}
	for _, h := range []struct{ path, name string }{
		{"devnode.headers.request_id", o.Headers.RequestID},
		{"devnode.headers.forwarded_host", o.Headers.ForwardedHost},
		{"devnode.headers.forwarded_for", o.Headers.ForwardedFor},
		{"devnode.headers.connector_type", o.Headers.ConnectorType},
		{"devnode.headers.connector_version", o.Headers.ConnectorVersion},
		{"devnode.headers.response_code", o.Headers.ResponseCode},
	} {
		if !isToken(h.name) {
			errs = append(errs, fmt.Errorf("%s must be an HTTP header name, got %q: set %s to a name like X-Wallarm-Request-Id", h.path, h.name, h.path))
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(h.name)
		if other, dup := names[canon]; dup {
			errs = append(errs, fmt.Errorf("%s names the same header as %s (%q): give each header its own name", h.path, other, h.name))
		}
		names[canon] = h.path
	}
	if !isToken(o.ResponseMethod) {
		errs = append(errs, fmt.Errorf("devnode.response_method must be an HTTP method, got %q: set devnode.response_method (default POST)", o.ResponseMethod))
	}
	if o.PathPrefix != "" && (!strings.HasPrefix(o.PathPrefix, "/") || strings.HasSuffix(o.PathPrefix, "/")) {
		errs = append(errs, fmt.Errorf("devnode.path_prefix must start with / and not end with /, got %q: set devnode.path_prefix like /wallarm or leave it empty", o.PathPrefix))
	}
	if o.FailStatus < 100 || o.FailStatus > 599 {
		errs = append(errs, fmt.Errorf("devnode.fail_status must be between 100 and 599, got %d: set devnode.fail_status (default 503)", o.FailStatus))
	}
	if o.FailFor < 0 {
		errs = append(errs, fmt.Errorf("devnode.fail_for must not be negative, got %s: set devnode.fail_for to 0 or a duration", o.FailFor))
	}
	if o.Latency < 0 {
		errs = append(errs, fmt.Errorf("devnode.latency must not be negative, got %s: set devnode.latency to 0 or a duration", o.Latency))
	}
	if o.PendingTTL < 0 {
		errs = append(errs, fmt.Errorf("devnode.pending_ttl must be positive, got %s: set devnode.pending_ttl (default 30s)", o.PendingTTL))
	}
	if o.MaxPending < 0 {
		errs = append(errs, fmt.Errorf("devnode.max_pending must be positive, got %d: set devnode.max_pending (default %d)", o.MaxPending, DefaultOptions().MaxPending))
	}
	for _, n := range o.AllowedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			errs = append(errs, fmt.Errorf("devnode.allowed_networks: %q is not a CIDR: list networks like 10.0.0.0/8", n))
		}
	}
	if o.MaxCompleted < 0 {
		errs = append(errs, fmt.Errorf("devnode.max_completed must be positive, got %d: set devnode.max_completed (default %d)", o.MaxCompleted, DefaultOptions().MaxCompleted))
	}
	return errors.Join(errs...)
}

// isToken reports whether s is a non-empty RFC 9110 token (header name, method).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
