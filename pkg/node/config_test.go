package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

func TestDefaultConfigValid(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "node.url is required") {
		t.Errorf("default config without url: Validate = %v, want node.url is required", err)
	}
	cfg.URL = "http://10.0.0.5:5050"
	if err := cfg.Validate(); err != nil {
		t.Errorf("default config with url: %v", err)
	}
	if cfg.Concurrency != 64 || cfg.ConnectTimeout != time.Second || cfg.ReplyTimeout != 5*time.Second ||
		cfg.ConnectorType != "apigw-connector" || cfg.ConnectorVersion == "" || cfg.HealthPath != "/wallarm-external-health" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error
	}{
		{"bad scheme", func(c *Config) { c.URL = "ftp://node:5050" }, []string{"node.url must start with http:// or https://", "APIGW_CONNECTOR_NODE_URL"}},
		{"no host", func(c *Config) { c.URL = "http://" }, []string{"node.url must name a host"}},
		{"host without scheme", func(c *Config) { c.URL = "10.0.0.5:5050" }, []string{"node.url"}},
		{"query", func(c *Config) { c.URL = "http://node:5050/?a=1" }, []string{"node.url must not carry a query"}},
		{"bad port", func(c *Config) { c.URL = "http://node:99999" }, []string{"node.url has an invalid port"}},
		{"prefix", func(c *Config) { c.PathPrefix = "apigw" }, []string{"node.path_prefix must be empty or a path starting with /", "APIGW_CONNECTOR_NODE_PATH_PREFIX"}},
		{"concurrency", func(c *Config) { c.Concurrency = 0 }, []string{"node.concurrency must be between 1 and 4096, got 0: set node.concurrency (env APIGW_CONNECTOR_NODE_CONCURRENCY)"}},
		{"connect timeout", func(c *Config) { c.ConnectTimeout = 0 }, []string{"node.connect_timeout", "APIGW_CONNECTOR_NODE_CONNECT_TIMEOUT"}},
		{"reply timeout", func(c *Config) { c.ReplyTimeout = -time.Second }, []string{"node.reply_timeout"}},
		{"max connections", func(c *Config) { c.MaxConnections = -1 }, []string{"node.max_connections"}},
		{"host mode", func(c *Config) { c.HostMode = "proxy" }, []string{`node.host_mode must be "original" or "node", got "proxy"`}},
		{"response method", func(c *Config) { c.ResponseMethod = "PO ST" }, []string{"node.response_method"}},
		{"connector type", func(c *Config) { c.ConnectorType = "" }, []string{"node.connector_type"}},
		{"connector version", func(c *Config) { c.ConnectorVersion = "1\n2" }, []string{"node.connector_version"}},
		{"header name", func(c *Config) { c.Headers.RequestID = "X Request" }, []string{"node.headers.request_id must be a valid HTTP header name", "APIGW_CONNECTOR_NODE_HEADERS_REQUEST_ID"}},
		{"reserved header", func(c *Config) { c.Headers.ForwardedHost = "host" }, []string{"node.headers.forwarded_host must not be"}},
		{"duplicate header", func(c *Config) { c.Headers.ResponseCode = "x-wallarm-request-id" }, []string{"node.headers.response_code names header", "node.headers.request_id"}},
		{"extra header clash", func(c *Config) { c.ExtraHeaders = map[string]string{"X-Wallarm-Forwarded-For": "1"} }, []string{"node.extra_headers.X-Wallarm-Forwarded-For"}},
		{"extra header value", func(c *Config) { c.ExtraHeaders = map[string]string{"X-App": "a\r\nb"} }, []string{"node.extra_headers.X-App must be a printable header value"}},
		{"initial backoff", func(c *Config) { c.Retry.InitialBackoff = 0 }, []string{"node.retry.initial_backoff", "APIGW_CONNECTOR_NODE_RETRY_INITIAL_BACKOFF"}},
		{"max backoff", func(c *Config) { c.Retry.MaxBackoff = time.Millisecond }, []string{"node.retry.max_backoff must be at least"}},
		{"multiplier", func(c *Config) { c.Retry.Multiplier = 0.5 }, []string{"node.retry.multiplier"}},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c.pem" }, []string{"node.tls.cert_file and node.tls.key_file must be set together"}},
		{"skip method", func(c *Config) { c.Filters.SkipMethods = []string{"GET", ""} }, []string{"node.filters.skip_methods[1]", "APIGW_CONNECTOR_NODE_FILTERS_SKIP_METHODS"}},
		{"status pattern", func(c *Config) { c.Filters.Statuses = []string{"2xx", "6xx"} }, []string{"node.filters.statuses[1] must be a status code 100-599"}},
		{"health path", func(c *Config) { c.HealthPath = "health" }, []string{"node.health_path must be off (TCP check only) or a path starting with /"}},
		{"several at once", func(c *Config) { c.Concurrency, c.HostMode = -1, "" }, []string{"node.concurrency", "node.host_mode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			cfg.URL = "http://10.0.0.5:5050"
			tt.edit(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateAcceptsVariants(t *testing.T) {
	t.Parallel()
	for _, edit := range []func(*Config){
		func(c *Config) { c.URL = "https://node.internal" },
		func(c *Config) { c.URL = "http://[::1]:5050/base/" },
		func(c *Config) { c.PathPrefix = "/apigw"; c.HostMode = HostModeNode },
		func(c *Config) { c.HealthPath = "" },
		func(c *Config) {
			c.Filters = FilterConfig{SkipMethods: []string{"OPTIONS", "HEAD"}, Statuses: []string{"2xx", "404"}}
		},
		func(c *Config) { c.ExtraHeaders = map[string]string{"X-Wallarm-Application": "7"} },
	} {
		cfg := DefaultConfig()
		cfg.URL = "http://10.0.0.5:5050"
		edit(&cfg)
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", cfg, err)
		}
	}
}

// node.request_id_format=hex sends 32 hex digits derived from the id: the same
// id maps to the same value (a redelivery stays a repeat), distinct ids differ.
func TestRequestIDFormatHex(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("X-Wallarm-Request-Id"))
	}))
	t.Cleanup(srv.Close)
	c, _ := testClient(t, srv.URL, func(cfg *Config) { cfg.RequestIDFormat = RequestIDHex; cfg.Concurrency = 1 })
	a, b := sampleCall(), sampleCall()
	b.RequestID = "another-id"
	for _, call := range []*accesslog.APICall{a, b} {
		if err := c.Deliver(context.Background(), call); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 4 || got[0] != got[1] || got[2] != got[3] || got[0] == got[2] {
		t.Fatalf("ids %q: want two messages per call with one id each, distinct per call", got)
	}
	for _, id := range got {
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("id %q is not 32 hex digits", id)
		}
	}
	bad := DefaultConfig()
	bad.URL, bad.RequestIDFormat = "http://127.0.0.1:1", "base64"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "node.request_id_format") {
		t.Errorf("Validate: %v, want a message naming node.request_id_format", err)
	}
}
