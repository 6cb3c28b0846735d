// Package config loads the connector's settings: defaults, then one optional
// YAML file, then environment overrides, then validation. Every setting has
// an override named APIGW_CONNECTOR_ + its YAML path in upper snake case;
// the official Lambda connector's X_NODE_URL and X_NODE_SCHEME work too.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/source/firehose"
	"github.com/wallarm/apigw-connector/pkg/source/kinesis"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "APIGW_CONNECTOR_"

// EnvConfigFile names the YAML file when --config is not given.
const EnvConfigFile = EnvPrefix + "CONFIG"

// Source types of `run`.
const (
	SourceKinesis  = "kinesis"
	SourceFirehose = "firehose"
)

// Config is the whole of the connector's settings.
type Config struct {
	Source    SourceConfig            `yaml:"source"`
	Node      node.Config             `yaml:"node"`
	Pipeline  pipeline.Config         `yaml:"pipeline"`
	Decode    DecodeConfig            `yaml:"decode"`
	AccessLog AccessLogConfig         `yaml:"access_log"`
	Kinesis   kinesis.Config          `yaml:"kinesis"`
	Firehose  firehose.Config         `yaml:"firehose"`
	Metrics   telemetry.MetricsConfig `yaml:"metrics"`
	Log       telemetry.LogConfig     `yaml:"log"`

	// legacyNodeURL names the X_NODE_* variables node.url came from, if any,
	// so that a message about node.url can point at what actually set it.
	legacyNodeURL string
}

// Off is the value that switches off a setting whose empty value means "off"
// (metrics.addr, node.health_path): an empty environment variable counts as
// unset, so APIGW_CONNECTOR_METRICS_ADDR=off is how the environment says it.
const Off = "off"

// SourceConfig selects what `run` consumes.
type SourceConfig struct {
	Type string `yaml:"type"` // kinesis or firehose
}

// DecodeConfig is the `decode:` section.
type DecodeConfig struct {
	// MaxDecompressedBytes caps one record's decompressed size: a gzip bomb
	// stops here with a clear error instead of exhausting memory.
	MaxDecompressedBytes int64 `yaml:"max_decompressed_bytes"`
}

// AccessLogConfig is the `access_log:` section.
type AccessLogConfig struct {
	// Fields maps each APICall field to the access-log keys tried in order.
	Fields accesslog.Mapping `yaml:"fields"`
	// DefaultHost is the API host of lines without a domainName.
	DefaultHost string `yaml:"default_host"`
	// HostsByLogGroup maps a log group name to the API host of its lines
	// without a domainName; it wins over DefaultHost. The environment takes
	// it as group=host,group2=host2 (log group names hold neither = nor ,).
	HostsByLogGroup map[string]string `yaml:"hosts_by_log_group"`
	// Region, with the line's apiId (or an API-Gateway-Execution-Logs_{apiId}/{stage}
	// log group), names the default endpoint {apiId}.execute-api.{region}.amazonaws.com;
	// empty: AWS_REGION.
	Region string `yaml:"region"`
}

// notNodeHost refuses a host setting naming the node itself: the inventory
// would file the API under the node's name, which is what the settings exist
// to prevent.
func (a AccessLogConfig) notNodeHost(nodeURL string) error {
	u, err := url.Parse(nodeURL)
	if err != nil || u.Host == "" {
		return nil
	}
	same := func(h string) bool {
		h = strings.TrimSpace(h)
		return strings.EqualFold(h, u.Host) || strings.EqualFold(h, u.Hostname())
	}
	if same(a.DefaultHost) {
		return fmt.Errorf("access_log.default_host %q is the node's own address (node.url): set access_log.default_host (env %sACCESS_LOG_DEFAULT_HOST) to the API's domain, e.g. api.example.com", a.DefaultHost, EnvPrefix)
	}
	for g, h := range a.HostsByLogGroup {
		if same(h) {
			return fmt.Errorf("access_log.hosts_by_log_group[%q] %q is the node's own address (node.url): set it to the API's domain (env %sACCESS_LOG_HOSTS_BY_LOG_GROUP=group=host,group2=host2)", g, h, EnvPrefix)
		}
	}
	return nil
}

// HostRules are the pipeline's host settings: the access_log ones, the
// region falling back to AWS_REGION.
func (a AccessLogConfig) HostRules(getenv func(string) string) pipeline.HostRules {
	region := strings.TrimSpace(a.Region)
	if region == "" && getenv != nil {
		region = strings.TrimSpace(getenv("AWS_REGION"))
	}
	return pipeline.HostRules{DefaultHost: strings.TrimSpace(a.DefaultHost), HostsByLogGroup: a.HostsByLogGroup, Region: region}
}

// Default returns every setting at its default.
func Default() Config {
	return Config{
		Source:    SourceConfig{Type: SourceKinesis},
		Node:      node.DefaultConfig(),
		Pipeline:  pipeline.DefaultConfig(),
		Decode:    DecodeConfig{MaxDecompressedBytes: 64 << 20},
		AccessLog: AccessLogConfig{Fields: accesslog.DefaultMapping()},
		Kinesis:   kinesis.DefaultConfig(),
		Firehose:  firehose.DefaultConfig(),
		Metrics:   telemetry.DefaultMetricsConfig(),
		Log:       telemetry.DefaultLogConfig(),
	}
}

// Load builds the effective configuration: defaults, the YAML file at path
// (optional: "" means none, unless APIGW_CONNECTOR_CONFIG names one), the
// environment as seen through getenv/environ, then derived values. It does
// not validate: call Validate or ValidateForRun.
func Load(path string, getenv func(string) string, environ []string) (Config, error) {
	cfg := Default()
	if path == "" {
		path = getenv(EnvConfigFile)
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config file: %w (pass an existing file with --config or %s)", err, EnvConfigFile)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	// The official Lambda's variables fill node.url when nothing more
	// specific is set, so the same environment drives both connectors.
	if cfg.Node.URL == "" && getenv(EnvPrefix+"NODE_URL") == "" {
		if u := legacyNodeURL(getenv("X_NODE_URL"), getenv("X_NODE_SCHEME")); u != "" {
			cfg.Node.URL = u
			cfg.legacyNodeURL = "X_NODE_URL and X_NODE_SCHEME"
		}
	}
	if err := applyEnv(&cfg, getenv, environ); err != nil {
		return cfg, err
	}
	if strings.EqualFold(strings.TrimSpace(cfg.Metrics.Addr), Off) {
		cfg.Metrics.Addr = ""
	}
	if strings.EqualFold(strings.TrimSpace(cfg.Node.HealthPath), Off) {
		cfg.Node.HealthPath = ""
	}
	cfg.Pipeline.Workers = cfg.Node.Concurrency
	cfg.Pipeline.Hosts = cfg.AccessLog.HostRules(getenv)
	return cfg, nil
}

// LoadFromOS is Load with the process environment.
func LoadFromOS(path string) (Config, error) {
	return Load(path, os.Getenv, os.Environ())
}

func legacyNodeURL(host, scheme string) string {
	host = strings.TrimSpace(host)
	if host == "" {
		return ""
	}
	if strings.Contains(host, "://") {
		return host
	}
	scheme = strings.ToLower(strings.TrimSpace(scheme))
	if scheme == "" {
		scheme = "https"
	}
	return scheme + "://" + host
}

func decodeYAML(data []byte, cfg *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a typo in a key must not silently keep the default
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		if msgs := explainYAML(data); len(msgs) > 0 {
			errs := make([]error, len(msgs))
			for i, m := range msgs {
				errs[i] = errors.New(m)
			}
			return collect(errs...)
		}
		// Not %w: the decoder's message may quote a secret's first bytes.
		return fmt.Errorf("parse YAML: %s (keys are listed in configs/apigw-connector.yaml)", scrubYAMLError(err))
	}
	return nil
}

// Validate checks the settings every command uses (node, pipeline, decoding,
// parsing, telemetry) and reports every problem at once (Problems).
func (c Config) Validate() error {
	var errs []error
	if c.Decode.MaxDecompressedBytes < 1024 {
		errs = append(errs, fmt.Errorf("decode.max_decompressed_bytes must be at least 1024, got %d: set decode.max_decompressed_bytes (env %sDECODE_MAX_DECOMPRESSED_BYTES), default 67108864 (64 MiB)", c.Decode.MaxDecompressedBytes, EnvPrefix))
	}
	// User info in node.url, however written (a password may hold '/', '#',
	// '?' or a bad %-escape, which url.Parse would cut elsewhere), is refused
	// here with the credentials redacted; node.Validate never echoes it either.
	if strings.Contains(c.Node.URL, "@") {
		errs = append(errs, c.nodeURLError(fmt.Errorf("node.url must not carry user info (credentials) or any '@', got %s: set node.url (env %sNODE_URL) as scheme://host:port; to authenticate to the node use node.extra_headers or a client certificate (node.tls.cert_file)", redactURL(c.Node.URL), EnvPrefix)))
		// node.Validate's own node.url message would say the same again.
		n := c.Node
		n.URL = "http://redacted.invalid"
		errs = append(errs, n.Validate())
	} else if err := c.Node.Validate(); err != nil {
		errs = append(errs, c.nodeURLErrors(err)...)
	}
	errs = append(errs, c.AccessLog.HostRules(nil).Validate(), c.AccessLog.notNodeHost(c.Node.URL))
	pl := c.Pipeline
	pl.Workers = max(pl.Workers, 1) // node.concurrency: node.Validate reports it
	for _, v := range []interface{ Validate() error }{pl, c.AccessLog.Fields, c.Metrics, c.Log} {
		errs = append(errs, v.Validate())
	}
	if strings.HasPrefix(strings.ToLower(c.Node.URL), "https://") {
		errs = append(errs, readable(
			fileSetting{"node.tls.ca_file", c.Node.TLS.CAFile},
			fileSetting{"node.tls.cert_file", c.Node.TLS.CertFile},
			fileSetting{"node.tls.key_file", c.Node.TLS.KeyFile},
		))
	}
	return collect(errs...)
}

// nodeURLErrors is nodeURLError for each of node.Validate's problems.
func (c Config) nodeURLErrors(err error) []error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok && isJoin(err) {
		for _, e := range j.Unwrap() {
			out = append(out, c.nodeURLError(e))
		}
		return out
	}
	return []error{c.nodeURLError(err)}
}

// nodeURLError points a node.url message at X_NODE_URL when that set it.
func (c Config) nodeURLError(err error) error {
	if c.legacyNodeURL != "" && strings.Contains(err.Error(), "node.url") {
		return fmt.Errorf("%w (node.url was taken from %s)", err, c.legacyNodeURL)
	}
	return err
}

type fileSetting struct{ path, file string }

// readable checks that every named file can be opened, so that a wrong path
// fails at start (and in check-config) with the setting that holds it.
func readable(files ...fileSetting) error {
	var errs []error
	for _, f := range files {
		if f.file == "" {
			continue
		}
		fh, err := os.Open(f.file)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: set %s (env %s) to a readable file", f.path, err, f.path, envName(strings.Split(f.path, "."))))
			continue
		}
		fh.Close()
	}
	return errors.Join(errs...)
}

// ValidateForRun also checks the selected source's section; every problem
// of both is reported at once.
func (c Config) ValidateForRun() error {
	errs := []error{c.Validate()}
	switch c.Source.Type {
	case SourceKinesis:
		errs = append(errs, c.Kinesis.Validate())
	case SourceFirehose:
		errs = append(errs, c.Firehose.Validate(), readable(
			fileSetting{"firehose.access_key_file", c.Firehose.AccessKeyFile},
			fileSetting{"firehose.tls.cert_file", c.Firehose.TLS.CertFile},
			fileSetting{"firehose.tls.key_file", c.Firehose.TLS.KeyFile},
		))
	default:
		errs = append(errs, fmt.Errorf("source.type %q is unknown: set source.type (env %sSOURCE_TYPE) to %q or %q", c.Source.Type, EnvPrefix, SourceKinesis, SourceFirehose))
	}
	return collect(errs...)
}

// DecoderOptions maps the decode section onto the decoder's options.
func (c Config) DecoderOptions() cwlogs.Options {
	return cwlogs.Options{MaxDecompressedBytes: c.Decode.MaxDecompressedBytes}
}
