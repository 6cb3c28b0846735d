package firehose

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config is the `firehose:` section: the HTTP endpoint a Firehose delivery
// stream posts to.
type Config struct {
	// Listen is host:port. The default listens on all interfaces because in ECS
	// the load balancer reaches the task through its own network interface.
	Listen string `yaml:"listen"`
	// Path is where Firehose POSTs deliveries (the endpoint URL's path).
	Path string `yaml:"path"`
	// HealthPath answers 200 without authentication, for load-balancer checks.
	HealthPath string `yaml:"health_path"`
	// AccessKeys are the accepted values of X-Amz-Firehose-Access-Key. Several
	// at once allow rotation: add the new key, switch the stream, drop the old.
	AccessKeys []string `yaml:"access_keys"`
	// AccessKeyFile holds more accepted keys, one per line (blank lines and
	// lines starting with # ignored). It is re-read when it changes, so a
	// mounted secret can rotate without a restart.
	AccessKeyFile string `yaml:"access_key_file"`
	// TLS serves HTTPS itself (Firehose requires HTTPS; terminate it here or at
	// a load balancer). The files are re-read when they change.
	TLS TLSConfig `yaml:"tls"`
	// MaxBodyBytes caps a delivery's decoded body (Firehose buffers 1-64 MiB
	// before content encoding); bigger bodies and gzip bombs get 413, and so
	// does a Content-Length that declares more, before a byte is read.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxRecords caps the records of one delivery (Firehose sends a few
	// hundred): each costs memory of its own, so a body of millions of empty
	// records would amplify its size many times over; more get 413.
	MaxRecords int `yaml:"max_records"`
	// MaxDecompressedBytesPerDelivery caps what a delivery's gzip records
	// inflate to in total (a plain record counts its own size): per-record gzip
	// bombs would otherwise cost gigabytes of inflation each; more get 413.
	MaxDecompressedBytesPerDelivery int64 `yaml:"max_decompressed_bytes_per_delivery"`
	// BodyReadTimeout bounds the wait for a delivery's body once it holds a
	// slot: a client that declares a body and sends it slowly (or never)
	// would otherwise keep the slot for the whole ack deadline; it gets 408.
	// The ack deadline applies too, when shorter.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// AckDeadline bounds how long a delivery may take before the endpoint gives
	// up with 503 so that Firehose retries; keep it below the stream's timeout.
	AckDeadline time.Duration `yaml:"ack_deadline"`
	// MaxConcurrentDeliveries bounds deliveries in progress (memory: each may
	// hold MaxBodyBytes); beyond it the endpoint answers 429.
	MaxConcurrentDeliveries int `yaml:"max_concurrent_deliveries"`
	// DedupRequestIDs is how many fully delivered Firehose request ids are
	// remembered, so a retry of an already acknowledged delivery is acked at once.
	DedupRequestIDs int `yaml:"dedup_request_ids"`
	// DedupCallIDs is how many delivered call ids are remembered, so a retried
	// batch does not send its delivered calls to the node again.
	DedupCallIDs int `yaml:"dedup_call_ids"`
}

// TLSConfig names a certificate and key in PEM files.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether HTTPS is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// DefaultConfig returns the defaults. It has no access key: one must be set.
func DefaultConfig() Config {
	return Config{
		Listen:                          ":8080",
		Path:                            "/firehose",
		HealthPath:                      "/ping",
		MaxBodyBytes:                    64 << 20,
		MaxRecords:                      100_000,
		MaxDecompressedBytesPerDelivery: 1 << 30,
		BodyReadTimeout:                 15 * time.Second,
		AckDeadline:                     60 * time.Second,
		MaxConcurrentDeliveries:         16,
		DedupRequestIDs:                 10_000,
		DedupCallIDs:                    1_000_000,
	}
}

// Validate checks the section. An access key is always required: an
// unauthenticated endpoint would let anyone inject calls into the inventory;
// local tests simply configure any key.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("firehose.listen %q is not host:port (%v): set firehose.listen (env APIGW_CONNECTOR_FIREHOSE_LISTEN) to e.g. \":8080\"", c.Listen, err))
	}
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("firehose.path %q must start with /: set firehose.path (env APIGW_CONNECTOR_FIREHOSE_PATH) to e.g. \"/firehose\"", c.Path))
	}
	if c.HealthPath != "" && !strings.HasPrefix(c.HealthPath, "/") {
		errs = append(errs, fmt.Errorf("firehose.health_path %q must start with /: set firehose.health_path (env APIGW_CONNECTOR_FIREHOSE_HEALTH_PATH) to e.g. \"/ping\", or empty to disable", c.HealthPath))
	}
	if c.HealthPath == c.Path {
		errs = append(errs, fmt.Errorf("firehose.health_path and firehose.path are both %q: give the health check its own path (env APIGW_CONNECTOR_FIREHOSE_HEALTH_PATH)", c.Path))
	}
	for i, k := range c.AccessKeys {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, fmt.Errorf("firehose.access_keys[%d] is empty: remove it or set a key (env APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS, comma-separated)", i))
		}
	}
	if len(c.AccessKeys) == 0 && c.AccessKeyFile == "" {
		errs = append(errs, fmt.Errorf("firehose.access_keys is empty and firehose.access_key_file is not set: set the access key configured on the delivery stream (env APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS, comma-separated, or a file in APIGW_CONNECTOR_FIREHOSE_ACCESS_KEY_FILE)"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, fmt.Errorf("firehose.tls needs both cert_file and key_file, got cert_file %q and key_file %q: set both (env APIGW_CONNECTOR_FIREHOSE_TLS_CERT_FILE, APIGW_CONNECTOR_FIREHOSE_TLS_KEY_FILE) or neither", c.TLS.CertFile, c.TLS.KeyFile))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("firehose.max_body_bytes must be between 1024 and 1073741824, got %d: set firehose.max_body_bytes (env APIGW_CONNECTOR_FIREHOSE_MAX_BODY_BYTES) to at least the stream's buffer size (default 67108864)", c.MaxBodyBytes))
	}
	if c.MaxRecords < 1 || c.MaxRecords > 10_000_000 {
		errs = append(errs, fmt.Errorf("firehose.max_records must be between 1 and 10000000, got %d: set firehose.max_records (env APIGW_CONNECTOR_FIREHOSE_MAX_RECORDS), default 100000", c.MaxRecords))
	}
	if c.MaxDecompressedBytesPerDelivery < 1024 || c.MaxDecompressedBytesPerDelivery > 64<<30 {
		errs = append(errs, fmt.Errorf("firehose.max_decompressed_bytes_per_delivery must be between 1024 and 68719476736, got %d: set firehose.max_decompressed_bytes_per_delivery (env APIGW_CONNECTOR_FIREHOSE_MAX_DECOMPRESSED_BYTES_PER_DELIVERY), default 1073741824 (1 GiB)", c.MaxDecompressedBytesPerDelivery))
	}
	if c.BodyReadTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("firehose.body_read_timeout must be at least 100ms, got %s: set firehose.body_read_timeout (env APIGW_CONNECTOR_FIREHOSE_BODY_READ_TIMEOUT), default 15s (firehose.ack_deadline bounds it too)", c.BodyReadTimeout))
	}
	if c.AckDeadline < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("firehose.ack_deadline must be at least 100ms, got %s: set firehose.ack_deadline (env APIGW_CONNECTOR_FIREHOSE_ACK_DEADLINE) below the delivery stream's timeout, e.g. 60s", c.AckDeadline))
	}
	if c.MaxConcurrentDeliveries < 1 || c.MaxConcurrentDeliveries > 4096 {
		errs = append(errs, fmt.Errorf("firehose.max_concurrent_deliveries must be between 1 and 4096, got %d: set firehose.max_concurrent_deliveries (env APIGW_CONNECTOR_FIREHOSE_MAX_CONCURRENT_DELIVERIES)", c.MaxConcurrentDeliveries))
	}
	if c.DedupRequestIDs < 0 {
		errs = append(errs, fmt.Errorf("firehose.dedup_request_ids must not be negative, got %d: set firehose.dedup_request_ids (env APIGW_CONNECTOR_FIREHOSE_DEDUP_REQUEST_IDS), 0 disables", c.DedupRequestIDs))
	}
	if c.DedupCallIDs < 0 {
		errs = append(errs, fmt.Errorf("firehose.dedup_call_ids must not be negative, got %d: set firehose.dedup_call_ids (env APIGW_CONNECTOR_FIREHOSE_DEDUP_CALL_IDS), 0 disables", c.DedupCallIDs))
	}
	return errors.Join(errs...)
}
