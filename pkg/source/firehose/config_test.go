package firehose

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultConfig()
	ok.AccessKeys = []string{"k"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with a key: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // the setting the message must name
	}{
		{"no key", func(c *Config) { c.AccessKeys = nil }, "firehose.access_keys"},
		{"empty key in list", func(c *Config) { c.AccessKeys = []string{"a", " "} }, "firehose.access_keys[1]"},
		{"bad listen", func(c *Config) { c.Listen = "8080" }, "firehose.listen"},
		{"relative path", func(c *Config) { c.Path = "firehose" }, "firehose.path"},
		{"health on delivery path", func(c *Config) { c.HealthPath = c.Path }, "firehose.health_path"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "a.pem" }, "firehose.tls"},
		{"tiny body cap", func(c *Config) { c.MaxBodyBytes = 10 }, "firehose.max_body_bytes"},
		{"no ack deadline", func(c *Config) { c.AckDeadline = 0 }, "firehose.ack_deadline"},
		{"no concurrency", func(c *Config) { c.MaxConcurrentDeliveries = 0 }, "firehose.max_concurrent_deliveries"},
		{"negative dedup", func(c *Config) { c.DedupCallIDs = -1 }, "firehose.dedup_call_ids"},
	} {
		c := ok
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "APIGW_CONNECTOR_FIREHOSE_") {
			t.Errorf("%s: %v, want an error naming %s and its env variable", tc.name, err, tc.want)
		}
	}
	withFile := DefaultConfig()
	withFile.AccessKeyFile = "/run/secrets/firehose-keys"
	withFile.AckDeadline = 30 * time.Second
	if err := withFile.Validate(); err != nil {
		t.Errorf("key file only: %v", err)
	}
}
