// Package telemetry owns the process's observability plumbing: the Prometheus
// registry and its HTTP listener (/metrics, /healthz, /readyz) and the slog setup.
package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// MetricsConfig is the `metrics:` section.
type MetricsConfig struct {
	// Addr is the dedicated listener for /metrics, /healthz and /readyz. Empty
	// disables it (config.Load maps "off" to empty: the environment's way to say it).
	// Bind it to 127.0.0.1:9102 or a private interface's address when nothing
	// outside the host (or the VPC) needs to scrape it.
	Addr string `yaml:"addr"`
	// MaxConnections caps the listener's open connections: past it new ones
	// wait in the kernel's accept queue, so idle or slow clients cannot
	// exhaust the process's file descriptors.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes a keep-alive connection with no request for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// DefaultMetricsConfig listens on all interfaces so that Prometheus and ECS health checks reach it.
func DefaultMetricsConfig() MetricsConfig {
	return MetricsConfig{Addr: ":9102", MaxConnections: 64, IdleTimeout: 30 * time.Second}
}

// Validate checks the listener address.
func (c MetricsConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("metrics.addr %q is not host:port (%v): set metrics.addr (env APIGW_CONNECTOR_METRICS_ADDR) to e.g. \":9102\" or \"127.0.0.1:9102\"", c.Addr, err))
	}
	if c.MaxConnections < 1 || c.MaxConnections > 65536 {
		errs = append(errs, fmt.Errorf("metrics.max_connections must be between 1 and 65536, got %d: set metrics.max_connections (env APIGW_CONNECTOR_METRICS_MAX_CONNECTIONS), default 64", c.MaxConnections))
	}
	if c.IdleTimeout < time.Second || c.IdleTimeout > time.Hour {
		errs = append(errs, fmt.Errorf("metrics.idle_timeout must be between 1s and 1h, got %s: set metrics.idle_timeout (env APIGW_CONNECTOR_METRICS_IDLE_TIMEOUT), default 30s", c.IdleTimeout))
	}
	return errors.Join(errs...)
}

// LogConfig is the `log:` section.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
	// RepeatInterval rate-limits identical messages: the same message at the same
	// level is written at most once per interval, with a count of the suppressed ones.
	RepeatInterval time.Duration `yaml:"repeat_interval"`
}

// DefaultLogConfig is JSON at info, as log shippers expect.
func DefaultLogConfig() LogConfig {
	return LogConfig{Level: "info", Format: "json", RepeatInterval: 10 * time.Second}
}

// Validate checks level and format.
func (c LogConfig) Validate() error {
	var errs []error
	if _, err := ParseLevel(c.Level); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w: set log.level (env APIGW_CONNECTOR_LOG_LEVEL) to debug, info, warn or error", err))
	}
	switch strings.ToLower(c.Format) {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format %q is unknown: set log.format (env APIGW_CONNECTOR_LOG_FORMAT) to json or text", c.Format))
	}
	if c.RepeatInterval < 0 {
		errs = append(errs, fmt.Errorf("log.repeat_interval must not be negative, got %s: set log.repeat_interval (env APIGW_CONNECTOR_LOG_REPEAT_INTERVAL) to e.g. 10s (0 disables rate limiting)", c.RepeatInterval))
	}
	return errors.Join(errs...)
}

// ParseLevel parses a slog level name.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q", s)
}
