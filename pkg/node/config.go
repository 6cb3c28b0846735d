package node

import (
	"errors"
	"fmt"
	"maps"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version is the connector version sent by default in the connector-version header.
// Set it at link time (-ldflags "-X github.com/wallarm/apigw-connector/pkg/node.Version=1.2.3");
// when empty, the module version from the build info is used, else "dev".
var Version string

// Host modes: which value the Host header of both messages carries.
const (
	HostModeOriginal = "original" // the call's domainName (what the API client called)
	HostModeNode     = "node"     // the node's host from node.url
)

// Request id formats (node.request_id_format).
const (
	RequestIDRaw = "raw"
	RequestIDHex = "hex"
)

// Pipelining (node.pipeline_depth): the default batches up to 16 messages per
// write and read (under a backlog the Kinesis worker paid a sixth more CPU per
// call at 8, for no latency-bound throughput: README, Talking to the node).
const (
	DefaultPipelineDepth = 16
	MaxPipelineDepth     = 64
)

// UnknownSourceIP is sent in the forwarded-for header when the call has no usable
// source IP (absent, "-", or not an IP such as API Gateway's "test-invoke-source-ip"):
// the node rejects messages without a client address, and the unspecified address
// cannot be mistaken for a real client.
const UnknownSourceIP = "0.0.0.0"

// Config is the `node:` section: where and how calls are delivered to the Native Node.
type Config struct {
	// URL is the node's base URL, scheme://host:port (the official Lambda's
	// X_NODE_SCHEME://X_NODE_URL). A path, if any, prefixes every message path.
	URL string `yaml:"url"`
	// PathPrefix is put before every call's path (e.g. "/apigw"); empty by default.
	PathPrefix string `yaml:"path_prefix"`
	// Concurrency is the number of calls in flight (the pipeline's bound); it also
	// sizes the connection pool when MaxConnections is 0.
	Concurrency int `yaml:"concurrency"`
	// ConnectTimeout bounds a TCP connect.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ReplyTimeout bounds one message: write, reply headers and body (and a TLS handshake).
	ReplyTimeout time.Duration `yaml:"reply_timeout"`
	// MaxConnections bounds connections to the node; 0 means Concurrency.
	MaxConnections int `yaml:"max_connections"`
	// PipelineDepth is how many messages may await their replies on one
	// connection (HTTP/1.1 pipelining); 1 turns pipelining off. A message joins
	// a busy connection only while the node answers there in well under a
	// millisecond, so a slow node still gets a connection per message in flight.
	PipelineDepth int `yaml:"pipeline_depth"`
	// HostMode is "original" (Host = the call's domainName) or "node" (Host = the node's host).
	HostMode string `yaml:"host_mode"`
	// RequestIDFormat is how the call's id travels in the request-id header:
	// "raw" (the connector's id, "<API Gateway request id>-<hash>", readable
	// in both logs) or "hex" (32 lowercase hex digits of its SHA-256, for a
	// node that expects hex ids). Which one a node expects is not documented.
	RequestIDFormat string `yaml:"request_id_format"`
	// ResponseMethod is the HTTP method of the response message.
	ResponseMethod string `yaml:"response_method"`
	// ConnectorType and ConnectorVersion identify the connector to the node.
	ConnectorType    string `yaml:"connector_type"`
	ConnectorVersion string `yaml:"connector_version"`
	// Profile is the wire shape of a call's two messages (ProfileNames); the
	// default, "raw", is this connector's assumption, not a documented format.
	Profile string `yaml:"profile"`
	// Headers are the names of the headers the raw profile sends.
	Headers HeaderNames `yaml:"headers"`
	// ExtraHeaders are static headers added to every message (e.g. an application id).
	ExtraHeaders map[string]string `yaml:"extra_headers"`
	Retry        RetryConfig       `yaml:"retry"`
	TLS          TLSConfig         `yaml:"tls"`
	Filters      FilterConfig      `yaml:"filters"`
	// HealthPath is the node's health endpoint probed by Probe; empty means Probe only
	// checks that a TCP connection can be opened.
	HealthPath string `yaml:"health_path"`
}

// HeaderNames are the names of the contract's metadata headers.
type HeaderNames struct {
	RequestID        string `yaml:"request_id"`
	ForwardedHost    string `yaml:"forwarded_host"`
	ForwardedFor     string `yaml:"forwarded_for"`
	ConnectorType    string `yaml:"connector_type"`
	ConnectorVersion string `yaml:"connector_version"`
	ResponseCode     string `yaml:"response_code"`
}

// RetryConfig shapes the exponential backoff (full jitter) between attempts of a message.
// There is no attempt limit: while the node is down delivery waits (backpressure).
type RetryConfig struct {
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	Multiplier     float64       `yaml:"multiplier"`
}

// TLSConfig applies to https node URLs. System roots are always trusted; CAFile adds more.
type TLSConfig struct {
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	// InsecureSkipVerify disables certificate checks: for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// FilterConfig selects which calls are forwarded; the default forwards everything.
type FilterConfig struct {
	// SkipMethods are methods not forwarded (e.g. OPTIONS, HEAD: discovery ignores them).
	SkipMethods []string `yaml:"skip_methods"`
	// Statuses are the response statuses forwarded, as codes ("404") or classes ("2xx");
	// empty forwards all.
	Statuses []string `yaml:"statuses"`
}

// DefaultConfig returns the defaults; URL has none and must be set.
func DefaultConfig() Config {
	return Config{
		Concurrency:      64,
		PipelineDepth:    DefaultPipelineDepth,
		ConnectTimeout:   time.Second,
		ReplyTimeout:     5 * time.Second,
		Profile:          DefaultProfile,
		HostMode:         HostModeOriginal,
		RequestIDFormat:  RequestIDRaw,
		ResponseMethod:   "POST",
		ConnectorType:    "apigw-connector",
		ConnectorVersion: buildVersion(),
		Headers: HeaderNames{
			RequestID:        "X-Wallarm-Request-Id",
			ForwardedHost:    "X-Wallarm-Forwarded-Host",
			ForwardedFor:     "X-Wallarm-Forwarded-For",
			ConnectorType:    "X-Wallarm-Connector-Type",
			ConnectorVersion: "X-Wallarm-Connector-Version",
			ResponseCode:     "X-Wallarm-Response-Code",
		},
		Retry: RetryConfig{
			InitialBackoff: 100 * time.Millisecond,
			MaxBackoff:     10 * time.Second,
			Multiplier:     2,
		},
		HealthPath: "/wallarm-external-health",
	}
}

func buildVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Validate checks every setting; each message names the setting and how to fix it.
func (c Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("node.%s %s: set node.%s (env %s)",
			path, fmt.Sprintf(format, args...), path, envName(path)))
	}

	// node.url is never echoed as written: a password in it may hold any
	// byte, and where url.Parse ends the user info is not where the operator
	// meant it to end ("http://admin:12345/S3CR3T@host" parses as host
	// "admin", port 12345). Messages show RedactURL's form only.
	shown := RedactURL(c.URL)
	if c.URL == "" {
		bad("url", "is required (the Native Node's base URL, e.g. http://10.0.0.5:5050)")
	} else if strings.Contains(c.URL, "@") {
		bad("url", "must not carry user info (credentials) or any '@', got %s: write it as scheme://host:port; to authenticate to the node use node.extra_headers or a client certificate (node.tls.cert_file)", shown)
	} else if u, err := url.Parse(c.URL); err != nil {
		bad("url", "must be a URL like http://10.0.0.5:5050, got %s (%s)", shown, urlErrorReason(err))
	} else if u.Scheme != "http" && u.Scheme != "https" {
		bad("url", "must start with http:// or https://, got %s", shown)
	} else if u.Host == "" || u.Hostname() == "" {
		bad("url", "must name a host, e.g. http://10.0.0.5:5050, got %s", shown)
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		bad("url", "must not carry a query, fragment or user info, got %s", shown)
	} else if u.Port() != "" {
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			bad("url", "has an invalid port in %s", shown)
		}
	}
	if c.PathPrefix != "" && (!strings.HasPrefix(c.PathPrefix, "/") || strings.ContainsAny(c.PathPrefix, "?# \t\r\n")) {
		bad("path_prefix", "must be empty or a path starting with / without spaces, ? or #, got %q", c.PathPrefix)
	}
	if c.Concurrency < 1 || c.Concurrency > 4096 {
		bad("concurrency", "must be between 1 and 4096, got %d", c.Concurrency)
	}
	if c.ConnectTimeout <= 0 || c.ConnectTimeout > time.Minute {
		bad("connect_timeout", "must be between 1ms and 1m, got %s", c.ConnectTimeout)
	}
	if c.ReplyTimeout <= 0 || c.ReplyTimeout > 10*time.Minute {
		bad("reply_timeout", "must be between 1ms and 10m, got %s", c.ReplyTimeout)
	}
	if c.MaxConnections < 0 || c.MaxConnections > 4096 {
		bad("max_connections", "must be between 0 (= node.concurrency) and 4096, got %d", c.MaxConnections)
	}
	// node.pipeline_depth: 0 is not "default" here, it would silently mean 1.
	if c.PipelineDepth < 1 || c.PipelineDepth > MaxPipelineDepth {
		bad("pipeline_depth", "must be between 1 (no pipelining) and %d, got %d", MaxPipelineDepth, c.PipelineDepth)
	}
	if c.RequestIDFormat != "" && c.RequestIDFormat != RequestIDRaw && c.RequestIDFormat != RequestIDHex {
		bad("request_id_format", "must be %q or %q, got %q", RequestIDRaw, RequestIDHex, c.RequestIDFormat)
	}
	if !validProfile(c.Profile) {
		bad("profile", "%s", profileError(c.Profile))
	}
	if c.HostMode != HostModeOriginal && c.HostMode != HostModeNode {
		bad("host_mode", "must be %q or %q, got %q", HostModeOriginal, HostModeNode, c.HostMode)
	}
	if !isToken(c.ResponseMethod) {
		bad("response_method", "must be an HTTP method such as POST, got %q", c.ResponseMethod)
	}
	if c.ConnectorType == "" || !isHeaderValue(c.ConnectorType) {
		bad("connector_type", "must be a non-empty printable string, got %q", c.ConnectorType)
	}
	if c.ConnectorVersion == "" || !isHeaderValue(c.ConnectorVersion) {
		bad("connector_version", "must be a non-empty printable string, got %q", c.ConnectorVersion)
	}

	seen := map[string]string{} // canonical name -> setting path
	checkName := func(path, name string) {
		switch canon := textproto.CanonicalMIMEHeaderKey(name); {
		case !isToken(name):
			bad(path, "must be a valid HTTP header name, got %q", name)
		case reservedHeader(canon):
			bad(path, "must not be %q, which the HTTP client manages", name)
		case seen[canon] != "":
			bad(path, "names header %q already used by node.%s; use distinct names", name, seen[canon])
		default:
			seen[canon] = path
		}
	}
	checkName("headers.request_id", c.Headers.RequestID)
	checkName("headers.forwarded_host", c.Headers.ForwardedHost)
	checkName("headers.forwarded_for", c.Headers.ForwardedFor)
	checkName("headers.connector_type", c.Headers.ConnectorType)
	checkName("headers.connector_version", c.Headers.ConnectorVersion)
	checkName("headers.response_code", c.Headers.ResponseCode)
	for _, name := range slices.Sorted(maps.Keys(c.ExtraHeaders)) {
		path := "extra_headers." + name
		checkName(path, name)
		if i := controlByte(c.ExtraHeaders[name]); i >= 0 {
			// The value is not shown: static headers carry tokens.
			bad(path, "must be a printable header value: byte %d of it is a control character (the value is not shown, it may be a secret)", i)
		}
	}

	if c.Retry.InitialBackoff <= 0 {
		bad("retry.initial_backoff", "must be positive, got %s", c.Retry.InitialBackoff)
	}
	if c.Retry.MaxBackoff < c.Retry.InitialBackoff {
		bad("retry.max_backoff", "must be at least node.retry.initial_backoff (%s), got %s", c.Retry.InitialBackoff, c.Retry.MaxBackoff)
	}
	if c.Retry.Multiplier < 1 || c.Retry.Multiplier > 10 {
		bad("retry.multiplier", "must be between 1 and 10, got %g", c.Retry.Multiplier)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.cert_file", "and node.tls.key_file must be set together (client certificate), got cert_file=%q key_file=%q", c.TLS.CertFile, c.TLS.KeyFile)
	}
	for i, m := range c.Filters.SkipMethods {
		if !isToken(m) {
			bad(fmt.Sprintf("filters.skip_methods[%d]", i), "must be an HTTP method such as OPTIONS, got %q", m)
		}
	}
	for i, s := range c.Filters.Statuses {
		if _, err := parseStatusPattern(s); err != nil {
			bad(fmt.Sprintf("filters.statuses[%d]", i), "%v", err)
		}
	}
	if c.HealthPath != "" && (!strings.HasPrefix(c.HealthPath, "/") || strings.ContainsAny(c.HealthPath, " \t\r\n#")) {
		// "off" in the file or the environment arrives here as "" (pkg/config maps it).
		bad("health_path", "must be off (TCP check only) or a path starting with /, got %q", c.HealthPath)
	}
	return errors.Join(errs...)
}

// envName maps a setting path under node to its environment override.
func envName(path string) string {
	if i := strings.IndexByte(path, '['); i >= 0 {
		path = path[:i]
	}
	if strings.HasPrefix(path, "extra_headers.") { // one variable holds the whole map
		path = "extra_headers"
	}
	r := strings.NewReplacer(".", "_", "-", "_")
	return "APIGW_CONNECTOR_NODE_" + strings.ToUpper(r.Replace(path))
}

func reservedHeader(canon string) bool {
	switch canon {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "User-Agent", "Trailer",
		"Te", "Upgrade", "Keep-Alive", "Proxy-Connection", "Idempotency-Key", "X-Idempotency-Key":
		return true
	}
	return false
}

// statusSet is a set of HTTP status codes 0-599.
type statusSet [10]uint64

func (s *statusSet) add(lo, hi int) {
	for c := lo; c <= hi; c++ {
		s[c/64] |= 1 << (c % 64)
	}
}

func (s *statusSet) has(c int) bool {
	return c >= 0 && c < 600 && s[c/64]&(1<<(c%64)) != 0
}

// parseStatusPattern accepts a code ("404") or a class ("2xx") and returns its range.
func parseStatusPattern(p string) ([2]int, error) {
	q := strings.ToLower(strings.TrimSpace(p))
	if len(q) == 3 && q[1:] == "xx" && q[0] >= '1' && q[0] <= '5' {
		base := int(q[0]-'0') * 100
		return [2]int{base, base + 99}, nil
	}
	if n, err := strconv.Atoi(q); err == nil && len(q) == 3 && n >= 100 && n <= 599 {
		return [2]int{n, n}, nil
	}
	return [2]int{}, fmt.Errorf("must be a status code 100-599 (e.g. 404) or a class 1xx-5xx (e.g. 2xx), got %q", p)
}

// isToken reports whether s is a non-empty RFC 9110 token (method or header name).
func isToken(s string) bool { return allIn(s, &tokenChar) }

var tokenChar = asciiSet("!#$%&'*+-.^_`|~")

// isHeaderValue reports whether s has no control bytes (HTAB allowed).
func isHeaderValue(s string) bool { return controlByte(s) < 0 }

// controlByte is the index of s's first control byte (HTAB allowed), or -1.
func controlByte(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return i
		}
	}
	return -1
}

// RedactURL returns a node URL safe to print, whether or not it parses:
// everything between "scheme://" and the last '@' (user info, however it
// is written) becomes <redacted>, and so do a query and a fragment, which
// may carry tokens too. "http://u:p@h:1/x" -> "http://<redacted>@h:1/x".
func RedactURL(raw string) string {
	const r = "<redacted>"
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = r + "@" + rest[i+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i+1] + r
	}
	return scheme + rest
}

// urlErrorReason is url.Parse's complaint without the URL it quotes.
func urlErrorReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ee url.EscapeError
	if errors.As(err, &ee) {
		return "a malformed %-escape"
	}
	return err.Error()
}
