package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRateLimitHandlerSuppressesRepeatsAndCountsThem(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	h := NewRateLimitHandler(slog.NewJSONHandler(&buf, nil), 10*time.Second, func() time.Time { return now })
	log := slog.New(h)
	for range 5 {
		log.Warn("skipping undecodable record", "reason", "gzip")
	}
	log.Warn("another problem")
	log.Info("lifecycle") // never suppressed
	log.Info("lifecycle")
	now = now.Add(11 * time.Second)
	log.With("shard", "s1").Warn("skipping undecodable record", "reason", "json")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want 5:\n%s", len(lines), buf.String())
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[4]), &last); err != nil {
		t.Fatal(err)
	}
	if last["suppressed"] != float64(4) || last["reason"] != "json" || last["shard"] != "s1" {
		t.Fatalf("last line %v: want suppressed=4 with its own context", last)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"default metrics", DefaultMetricsConfig().Validate(), ""},
		{"disabled metrics", MetricsConfig{}.Validate(), ""},
		{"bad addr", MetricsConfig{Addr: "9102"}.Validate(), "metrics.addr"},
		{"default log", DefaultLogConfig().Validate(), ""},
		{"bad level", LogConfig{Level: "loud", Format: "json"}.Validate(), "log.level"},
		{"bad format", LogConfig{Level: "info", Format: "xml"}.Validate(), "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.want == "" {
				if tt.err != nil {
					t.Fatalf("unexpected error %v", tt.err)
				}
				return
			}
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %s", tt.err, tt.want)
			}
		})
	}
}

func TestServerEndpoints(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "apigw_connector_test_things_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	s := NewServer("127.0.0.1:0", reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var ready atomic.Bool
	s.AddReadyCheck("source", func(context.Context) error {
		if !ready.Load() {
			return errors.New("no leases yet")
		}
		return nil
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	base := "http://" + s.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no leases yet") {
		t.Fatalf("readyz before ready: %d %s", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "apigw_connector_test_things_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics %d:\n%s", code, body)
	}
}

func TestConfigMessagesNameTheVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{LogConfig{Level: "info", Format: "json", RepeatInterval: -time.Second}.Validate(), "APIGW_CONNECTOR_LOG_REPEAT_INTERVAL"},
		{LogConfig{Level: "loud", Format: "json"}.Validate(), "APIGW_CONNECTOR_LOG_LEVEL"},
		{LogConfig{Level: "info", Format: "xml"}.Validate(), "APIGW_CONNECTOR_LOG_FORMAT"},
		{MetricsConfig{Addr: "9102"}.Validate(), "APIGW_CONNECTOR_METRICS_ADDR"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v does not name %s", tc.err, tc.want)
		}
	}
}

// State changes (a lease lost, taken, handed off) are rare and each one
// matters: records carrying the event attribute are never suppressed.
func TestRateLimitHandlerNeverSuppressesEvents(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	log := slog.New(NewRateLimitHandler(slog.NewJSONHandler(&buf, nil), 10*time.Second, func() time.Time { return now }))
	for i := range 5 {
		log.Warn("lease lost", EventKey, "lease_lost", "shard", i)
	}
	log.Warn("lease lost") // without the attribute: rate-limited as before
	log.Warn("lease lost")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("got %d lines, want 6 (5 events + 1 plain):\n%s", len(lines), buf.String())
	}
	for _, l := range lines[:5] {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m[EventKey] != "lease_lost" || m["suppressed"] != nil {
			t.Errorf("event line %v: want %s=lease_lost and no suppressed count", m, EventKey)
		}
	}
}

// Durations are written as short strings by both formats, wherever logged.
func TestLoggedDurationsAreShortStrings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format string
		want   string
	}{
		{"json", `"delay":"4.01s"`},
		{"text", `delay=4.01s`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			log := NewLogger(LogConfig{Level: "info", Format: tt.format, RepeatInterval: time.Second}, &b)
			log.With("grace", 30*time.Second).WithGroup("retry").Warn("node down", "delay", 4012740337*time.Nanosecond, slog.Any("backoff", 1500*time.Microsecond))
			out := b.String()
			for _, w := range []string{tt.want, "30s", "1.5ms"} {
				if !strings.Contains(out, w) {
					t.Errorf("log line does not hold %s:\n%s", w, out)
				}
			}
			if strings.Contains(out, "4012740337") {
				t.Errorf("raw nanoseconds in:\n%s", out)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]string{
		4012740337 * time.Nanosecond:           "4.01s",
		999 * time.Nanosecond:                  "999ns",
		1234567 * time.Nanosecond:              "1.23ms",
		123456 * time.Microsecond:              "123ms",
		90*time.Minute + 1234*time.Millisecond: "1h30m1s",
		-2500 * time.Millisecond:               "-2.5s",
		0:                                      "0s",
	} {
		if got := ShortDuration(in); got != want {
			t.Errorf("ShortDuration(%d) = %s, want %s", in, got, want)
		}
	}
}
