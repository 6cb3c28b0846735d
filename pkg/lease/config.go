package lease

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"
)

// Config configures a Coordinator. Zero durations take their defaults (see
// DefaultConfig); CreateTable has no zero default, so start from DefaultConfig.
type Config struct {
	// TableName is the lease table, by KCL convention the application name.
	TableName string `yaml:"table_name"`
	// WorkerID identifies this worker in leaseOwner; unique per process.
	// Empty: hostname plus a random suffix.
	WorkerID string `yaml:"worker_id"`
	// FailoverTime: a lease whose counter has not changed for this long, by
	// this worker's clock, is expired and may be taken (KCL failoverTimeMillis).
	FailoverTime time.Duration `yaml:"failover_time"`
	// RenewInterval between renewals of held leases; 0 = FailoverTime/3.
	RenewInterval time.Duration `yaml:"renew_interval"`
	// TakeInterval between scans for expired, unowned and stealable leases
	// while something is to be done (below target, just started, a lease
	// changed hands); see StableScanInterval.
	TakeInterval time.Duration `yaml:"take_interval"`
	// StableScanInterval between scans while this worker is balanced and
	// nothing changed; 0 = 2.5 x FailoverTime: a little less often than the
	// Java KCL's taker (2 x failover), so a fleet reads the table less. A
	// crashed worker's leases are noticed up to this much later.
	StableScanInterval time.Duration `yaml:"stable_scan_interval"`
	// RequestTimeout bounds every DynamoDB call (the SDK's retries
	// included), so a hanging table cannot hold a renewal past the lease;
	// 0 = FailoverTime/5. Below FailoverTime; keep it well below
	// FailoverTime/3 so a failed renewal is retried in time.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxLeasesPerWorker caps how many leases this worker holds; 0 = no cap.
	MaxLeasesPerWorker int `yaml:"max_leases_per_worker"`
	// MaxLeasesToSteal per take cycle from the most loaded worker.
	MaxLeasesToSteal int `yaml:"max_leases_to_steal"`
	// ShardSyncInterval between syncs of leases with the stream's shards.
	ShardSyncInterval time.Duration `yaml:"shard_sync_interval"`
	// CreateTable creates the table (on-demand billing) when it is missing.
	CreateTable bool `yaml:"create_table"`
	// InitialPosition is the checkpoint of new leases of shards that descend
	// from no leased shard: TRIM_HORIZON, LATEST or AT_TIMESTAMP (the
	// timestamp itself is the processor's setting).
	InitialPosition string `yaml:"initial_position"`
}

// DefaultConfig returns the defaults: KCL's 10 s failover, renew every
// FailoverTime/3, take every second, steal one lease at a time, shard sync
// every minute, create the table, start at TRIM_HORIZON.
func DefaultConfig() Config {
	return Config{
		FailoverTime:      10 * time.Second,
		TakeInterval:      time.Second,
		MaxLeasesToSteal:  1,
		ShardSyncInterval: time.Minute,
		CreateTable:       true,
		InitialPosition:   TrimHorizon,
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.FailoverTime == 0 {
		c.FailoverTime = d.FailoverTime
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.FailoverTime / 3
	}
	if c.TakeInterval == 0 {
		c.TakeInterval = d.TakeInterval
	}
	if c.StableScanInterval == 0 {
		c.StableScanInterval = max(5*c.FailoverTime/2, c.TakeInterval)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = c.FailoverTime / 5
	}
	if c.MaxLeasesToSteal == 0 {
		c.MaxLeasesToSteal = d.MaxLeasesToSteal
	}
	if c.ShardSyncInterval == 0 {
		c.ShardSyncInterval = d.ShardSyncInterval
	}
	if c.InitialPosition == "" {
		c.InitialPosition = d.InitialPosition
	}
	if c.WorkerID == "" {
		c.WorkerID = DefaultWorkerID()
	}
	return c
}

// DefaultWorkerID returns hostname:random, unique per call.
func DefaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return host + ":" + hex.EncodeToString(b[:])
}

// Validate checks the settings; zero values that have defaults are valid.
// Messages name settings by their YAML path under "lease.".
func (c Config) Validate() error {
	var errs []error
	if c.TableName == "" {
		errs = append(errs, errors.New("lease.table_name is empty: set lease.table_name to the lease table (by KCL convention the application name)"))
	} else if n := len(c.TableName); n < 3 || n > 255 {
		errs = append(errs, fmt.Errorf("lease.table_name %q must be 3 to 255 characters long, got %d: set lease.table_name", c.TableName, n))
	}
	if c.FailoverTime != 0 && c.FailoverTime < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease.failover_time must be at least 100ms, got %s: set lease.failover_time (KCL default 10s)", c.FailoverTime))
	}
	fo := c.FailoverTime
	if fo == 0 {
		fo = DefaultConfig().FailoverTime
	}
	if c.RenewInterval < 0 || (c.RenewInterval > 0 && c.RenewInterval >= fo) {
		errs = append(errs, fmt.Errorf("lease.renew_interval must be positive and below lease.failover_time (%s), got %s: set lease.renew_interval (0 = failover_time/3)", fo, c.RenewInterval))
	}
	if c.TakeInterval < 0 {
		errs = append(errs, fmt.Errorf("lease.take_interval must not be negative, got %s: set lease.take_interval (0 = 1s)", c.TakeInterval))
	}
	if c.StableScanInterval < 0 {
		errs = append(errs, fmt.Errorf("lease.stable_scan_interval must not be negative, got %s: set lease.stable_scan_interval (APIGW_CONNECTOR_LEASE_STABLE_SCAN_INTERVAL; 0 = 2.5 x failover_time)", c.StableScanInterval))
	}
	// Safety does not hang on it (a lease stops FailoverTime after the last
	// renewal that got through, however long calls take), but a renewal
	// must be able to fail and be retried before then.
	if c.RequestTimeout < 0 || c.RequestTimeout >= fo {
		errs = append(errs, fmt.Errorf("lease.request_timeout must be positive and below lease.failover_time (%s), got %s: set lease.request_timeout (APIGW_CONNECTOR_LEASE_REQUEST_TIMEOUT; 0 = failover_time/5)", fo, c.RequestTimeout))
	}
	if c.ShardSyncInterval < 0 {
		errs = append(errs, fmt.Errorf("lease.shard_sync_interval must not be negative, got %s: set lease.shard_sync_interval (0 = 1m)", c.ShardSyncInterval))
	}
	if c.MaxLeasesPerWorker < 0 {
		errs = append(errs, fmt.Errorf("lease.max_leases_per_worker must be >= 0 (0 = unlimited), got %d: set lease.max_leases_per_worker", c.MaxLeasesPerWorker))
	}
	if c.MaxLeasesToSteal < 0 {
		errs = append(errs, fmt.Errorf("lease.max_leases_to_steal must be >= 0 (0 = 1), got %d: set lease.max_leases_to_steal", c.MaxLeasesToSteal))
	}
	switch c.InitialPosition {
	case "", TrimHorizon, Latest, AtTimestamp:
	default:
		errs = append(errs, fmt.Errorf("lease.initial_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, got %q: set lease.initial_position", c.InitialPosition))
	}
	return errors.Join(errs...)
}
