package kinesis

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := func() Config { c := DefaultConfig(); c.Stream = "access-logs"; return c }
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults with a stream", func(*Config) {}, ""},
		{"stream ARN", func(c *Config) { c.Stream = "arn:aws:kinesis:eu-west-1:123456789012:stream/access-logs" }, ""},
		{"no stream", func(c *Config) { c.Stream = "" }, "kinesis.stream is required: set kinesis.stream (env APIGW_CONNECTOR_KINESIS_STREAM)"},
		{"bad ARN", func(c *Config) { c.Stream = "arn:aws:s3:::bucket" }, "kinesis.stream must be a stream name or a stream ARN"},
		{"poll too fast", func(c *Config) { c.PollInterval = 100 * time.Millisecond }, "kinesis.poll_interval must be at least 200ms"},
		{"max records", func(c *Config) { c.MaxRecords = 10001 }, "kinesis.max_records must be between 1 and 10000, got 10001"},
		{"position", func(c *Config) { c.InitialPosition = "EARLIEST" }, "kinesis.initial_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP"},
		{"timestamp needed", func(c *Config) { c.InitialPosition = PositionAtTimestamp }, "kinesis.initial_timestamp is required"},
		{"timestamp given", func(c *Config) {
			c.InitialPosition, c.InitialTimestamp = PositionAtTimestamp, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		}, ""},
		{"table name", func(c *Config) { c.ApplicationName = "my app" }, "kinesis.application_name must be a valid DynamoDB table name"},
		{"failover", func(c *Config) { c.FailoverTime = 0 }, "kinesis.failover_time must be at least 1s"},
		{"steal", func(c *Config) { c.MaxLeasesToSteal = 0 }, "kinesis.max_leases_to_steal must be at least 1"},
		{"negative max leases", func(c *Config) { c.MaxLeasesPerWorker = -1 }, "kinesis.max_leases_per_worker"},
		{"checkpoint interval", func(c *Config) { c.CheckpointInterval = 0 }, "kinesis.checkpoint_interval must be positive"},
		{"grace", func(c *Config) { c.ShutdownGrace = 0 }, "kinesis.shutdown_grace must be positive"},
		{"prefetch", func(c *Config) { c.PrefetchBatches = 0 }, "kinesis.prefetch_batches must be at least 1"},
		{"request timeout", func(c *Config) { c.RequestTimeout = 0 }, "kinesis.request_timeout must be at least 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestECSTaskID(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v4/abc/task" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"Cluster":"c","TaskARN":"arn:aws:ecs:eu-west-1:123456789012:task/prod/0f4e1c2b9a8d4e7f8a6b5c4d3e2f1a0b"}`))
	}))
	defer srv.Close()
	id, err := ecsTaskID(t.Context(), srv.URL+"/v4/abc")
	if err != nil || id != "0f4e1c2b9a8d4e7f8a6b5c4d3e2f1a0b" {
		t.Fatalf("ecsTaskID = %q, %v", id, err)
	}
	if _, err := ecsTaskID(t.Context(), srv.URL+"/other"); err == nil {
		t.Fatal("no error for a failing metadata endpoint")
	}
}

func TestDefaultWorkerIDWithoutECS(t *testing.T) {
	t.Setenv("ECS_CONTAINER_METADATA_URI_V4", "")
	a, b := defaultWorkerID(t.Context()), defaultWorkerID(t.Context())
	if a == b || a == "" {
		t.Fatalf("worker ids %q and %q: want unique, non-empty", a, b)
	}
}
