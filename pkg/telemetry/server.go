package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyCheck reports nil when its component is ready.
type ReadyCheck func(ctx context.Context) error

// NewRegistry returns a registry with the Go and process collectors, the
// product's own registry rather than the global one.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server serves /metrics, /healthz and /readyz on a dedicated listener.
type Server struct {
	cfg    MetricsConfig
	gather prometheus.Gatherer
	log    *slog.Logger

	mu     sync.Mutex
	checks map[string]ReadyCheck
	srv    *http.Server
	ln     net.Listener
	done   chan struct{}
}

// Bounds of one exchange on the metrics listener: a scrape is small and
// local, so anything slower is a stuck or hostile client holding a descriptor.
const (
	metricsReadTimeout  = 10 * time.Second
	metricsWriteTimeout = 30 * time.Second
)

// NewServer builds the server on addr with the default limits; AddReadyCheck before Start.
func NewServer(addr string, g prometheus.Gatherer, log *slog.Logger) *Server {
	cfg := DefaultMetricsConfig()
	cfg.Addr = addr
	return NewServerConfig(cfg, g, log)
}

// NewServerConfig builds the server from the metrics section; AddReadyCheck before Start.
func NewServerConfig(cfg MetricsConfig, g prometheus.Gatherer, log *slog.Logger) *Server {
	def := DefaultMetricsConfig()
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = def.MaxConnections
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	return &Server{cfg: cfg, gather: g, log: log, checks: map[string]ReadyCheck{}}
}

// AddReadyCheck registers a named readiness condition for /readyz.
func (s *Server) AddReadyCheck(name string, c ReadyCheck) {
	s.mu.Lock()
	s.checks[name] = c
	s.mu.Unlock()
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", s.readyz)
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	checks := make(map[string]ReadyCheck, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	res := map[string]string{}
	ok := true
	for name, c := range checks {
		if err := c(ctx); err != nil {
			ok = false
			res[name] = err.Error()
		} else {
			res[name] = "ok"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": res})
}

// Start binds the listener and serves in the background.
func (s *Server) Start(_ context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen metrics on %s: %w (set metrics.addr / APIGW_CONNECTOR_METRICS_ADDR to a free port)", s.cfg.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ln = LimitListener(ln, s.cfg.MaxConnections)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
	s.log.Info("metrics listener started", "addr", ln.Addr().String(), "max_connections", s.cfg.MaxConnections, "idle_timeout", s.cfg.IdleTimeout.String())
	return nil
}

// Addr returns the bound address (after Start).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops the listener.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
