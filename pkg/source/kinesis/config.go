package kinesis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wallarm/apigw-connector/pkg/lease"
)

// Initial positions a new lease may start from (the KCL's names, as pkg/lease writes them).
const (
	PositionTrimHorizon = lease.TrimHorizon
	PositionLatest      = lease.Latest
	PositionAtTimestamp = lease.AtTimestamp
)

// Limits Kinesis imposes per shard; see aws-formats.md §3.
const (
	// minPollInterval keeps one reader at or below 5 GetRecords calls/s, the per-shard limit
	// shared by every consumer of the stream.
	minPollInterval = 200 * time.Millisecond
	maxRecordsLimit = 10000
)

// Config is the `kinesis:` section: which stream to read and how the workers share it.
type Config struct {
	// Stream is the data stream's name or ARN (required).
	Stream string `yaml:"stream"`
	// ApplicationName names the lease table (one DynamoDB table per application, as the KCL does).
	ApplicationName string `yaml:"application_name"`
	// WorkerID identifies this worker in the lease table. Empty: the ECS task id when running on
	// ECS, else hostname plus a random suffix.
	WorkerID string `yaml:"worker_id"`
	// InitialPosition is where a shard with no checkpoint starts: TRIM_HORIZON, LATEST or
	// AT_TIMESTAMP (with InitialTimestamp).
	InitialPosition  string    `yaml:"initial_position"`
	InitialTimestamp time.Time `yaml:"initial_timestamp"`
	// FailoverTime is how long a lease may go unrenewed before another worker takes it.
	FailoverTime time.Duration `yaml:"failover_time"`
	// MaxLeasesPerWorker caps the shards one worker reads (0 = unlimited).
	MaxLeasesPerWorker int `yaml:"max_leases_per_worker"`
	// MaxLeasesToSteal is how many leases a worker steals at once from a busier one.
	MaxLeasesToSteal int `yaml:"max_leases_to_steal"`
	// PollInterval is the minimum time between two GetRecords calls on one shard. The 5 calls/s
	// per shard limit is shared with every other consumer of the stream, so leave room for them.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxRecords is the GetRecords limit (1-10000).
	MaxRecords int `yaml:"max_records"`
	// ShardSyncInterval is how often the shard list is compared with the lease table.
	ShardSyncInterval time.Duration `yaml:"shard_sync_interval"`
	// LeaseRequestTimeout bounds every lease-table call (0: failover_time / 5);
	// it must stay below failover_time.
	LeaseRequestTimeout time.Duration `yaml:"lease_request_timeout"`
	// StableScanInterval is how often a balanced worker scans the lease table
	// (0: 2.5 x failover_time; the Java KCL's taker scans every 2 x failover_time).
	StableScanInterval time.Duration `yaml:"stable_scan_interval"`
	// CheckpointInterval is how often a shard's settled position is written to the lease table.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// ShutdownGrace bounds how long in-flight calls may take to settle when a shard stops.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// CreateLeaseTable creates the lease table when missing.
	CreateLeaseTable bool `yaml:"create_lease_table"`
	// PrefetchRecords and PrefetchBatches bound what one shard reads ahead while the current
	// GetRecords result is being handed to the pipeline.
	PrefetchRecords int `yaml:"prefetch_records"`
	PrefetchBatches int `yaml:"prefetch_batches"`
	// RequestTimeout bounds every Kinesis call (GetRecords, GetShardIterator, ListShards), so a
	// connection that stops answering costs one timeout and a retry, not the shard.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// DefaultConfig returns the defaults; Stream must still be set.
func DefaultConfig() Config {
	return Config{
		ApplicationName:    "apigw-connector",
		InitialPosition:    PositionTrimHorizon,
		FailoverTime:       10 * time.Second,
		MaxLeasesToSteal:   1,
		PollInterval:       minPollInterval,
		MaxRecords:         maxRecordsLimit,
		ShardSyncInterval:  60 * time.Second,
		CheckpointInterval: 5 * time.Second,
		ShutdownGrace:      30 * time.Second,
		CreateLeaseTable:   true,
		PrefetchRecords:    20000,
		PrefetchBatches:    2,
		RequestTimeout:     10 * time.Second,
	}
}

// Validate reports every invalid setting, naming its full path and the fix.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		env := "APIGW_CONNECTOR_KINESIS_" + strings.ToUpper(key)
		errs = append(errs, fmt.Errorf("kinesis.%s "+format+": set kinesis.%s (env %s)",
			append(append([]any{key}, args...), key, env)...))
	}
	if strings.TrimSpace(c.Stream) == "" {
		bad("stream", "is required")
	} else if strings.HasPrefix(c.Stream, "arn:") && !strings.Contains(c.Stream, ":stream/") {
		bad("stream", "must be a stream name or a stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME), got %q", c.Stream)
	}
	if c.ApplicationName == "" {
		bad("application_name", "is required (it names the DynamoDB lease table)")
	} else if len(c.ApplicationName) < 3 || len(c.ApplicationName) > 255 || !validTableName(c.ApplicationName) {
		bad("application_name", "must be a valid DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .), got %q", c.ApplicationName)
	}
	switch c.InitialPosition {
	case PositionTrimHorizon, PositionLatest:
	case PositionAtTimestamp:
		if c.InitialTimestamp.IsZero() {
			bad("initial_timestamp", "is required when kinesis.initial_position is AT_TIMESTAMP (RFC 3339, e.g. 2026-01-02T15:04:05Z)")
		}
	default:
		bad("initial_position", "must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, got %q", c.InitialPosition)
	}
	if c.FailoverTime < time.Second {
		bad("failover_time", "must be at least 1s, got %s", c.FailoverTime)
	}
	if c.MaxLeasesPerWorker < 0 {
		bad("max_leases_per_worker", "must be 0 (unlimited) or more, got %d", c.MaxLeasesPerWorker)
	}
	if c.MaxLeasesToSteal < 1 {
		bad("max_leases_to_steal", "must be at least 1, got %d", c.MaxLeasesToSteal)
	}
	if c.PollInterval < minPollInterval {
		bad("poll_interval", "must be at least 200ms (Kinesis allows 5 GetRecords/s per shard, shared by all consumers), got %s", c.PollInterval)
	}
	if c.MaxRecords < 1 || c.MaxRecords > maxRecordsLimit {
		bad("max_records", "must be between 1 and 10000, got %d", c.MaxRecords)
	}
	if c.ShardSyncInterval < time.Second {
		bad("shard_sync_interval", "must be at least 1s, got %s", c.ShardSyncInterval)
	}
	if c.LeaseRequestTimeout < 0 || (c.LeaseRequestTimeout > 0 && c.LeaseRequestTimeout >= c.FailoverTime) {
		bad("lease_request_timeout", "must be 0 (failover_time / 5) or below failover_time (%s), got %s", c.FailoverTime, c.LeaseRequestTimeout)
	}
	if c.StableScanInterval < 0 {
		bad("stable_scan_interval", "must not be negative (0: 2.5 x failover_time), got %s", c.StableScanInterval)
	}
	if c.CheckpointInterval <= 0 {
		bad("checkpoint_interval", "must be positive, got %s", c.CheckpointInterval)
	}
	if c.ShutdownGrace <= 0 {
		bad("shutdown_grace", "must be positive, got %s", c.ShutdownGrace)
	}
	if c.PrefetchRecords < 1 {
		bad("prefetch_records", "must be at least 1, got %d", c.PrefetchRecords)
	}
	if c.PrefetchBatches < 1 {
		bad("prefetch_batches", "must be at least 1, got %d", c.PrefetchBatches)
	}
	if c.RequestTimeout < 100*time.Millisecond {
		bad("request_timeout", "must be at least 100ms (a GetRecords answer may carry 10 MB), got %s", c.RequestTimeout)
	}
	return errors.Join(errs...)
}

func validTableName(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}
