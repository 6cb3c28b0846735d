package devnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wallarm/apigw-connector/internal/delay"
)

// ErrAlreadyStarted is returned by Start on a server that is already serving.
var ErrAlreadyStarted = errors.New("devnode: already started")

// Server is the node stand-in. Its Handler can also be mounted on any http.Server
// (e.g. httptest) without Start.
type Server struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time // replaced in tests to step over the TTL

	// Canonical header keys, to index http.Header without re-canonicalising.
	hRequestID, hForwardedHost, hForwardedFor    string
	hConnectorType, hConnectorVersion, hRespCode string

	failUntil  atomic.Int64 // unix nanos; 0 = not failing
	failStatus atomic.Int64
	latency    atomic.Int64 // nanoseconds
	sleeping   atomic.Int64 // replies waiting on latency, for tests

	pairs       *pairing
	inv         inventoryView
	counters    counters
	ownHostSeen atomic.Pointer[string]
	allowedNets []netip.Prefix // Options.AllowedNetworks, parsed
	metrics     *metrics

	handler  http.Handler
	control  map[string]http.Handler
	closing  chan struct{} // closed by Shutdown: sleeping handlers return
	closeOne sync.Once

	delayOnce sync.Once
	delay     delay.Delayer // made on the first reply held for latency; nil if Shutdown came first

	mu      sync.Mutex
	srv     *http.Server
	served  chan struct{} // closed when Serve returns
	started bool
}

// New builds a server. Empty names and zero sizes in o take their defaults
// (RequireConnectorHeaders is taken as given: start from DefaultOptions). It panics if
// o.Validate fails, which is a programming error; RunCommand validates first. reg may
// be nil; /metrics is always served from the server's own registry.
func New(o Options, reg prometheus.Registerer, log *slog.Logger) *Server {
	if err := o.Validate(); err != nil {
		panic(fmt.Sprintf("devnode.New: invalid options: %v", err))
	}
	o = o.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:              o,
		log:               log,
		now:               time.Now,
		hRequestID:        textproto.CanonicalMIMEHeaderKey(o.Headers.RequestID),
		hForwardedHost:    textproto.CanonicalMIMEHeaderKey(o.Headers.ForwardedHost),
		hForwardedFor:     textproto.CanonicalMIMEHeaderKey(o.Headers.ForwardedFor),
		hConnectorType:    textproto.CanonicalMIMEHeaderKey(o.Headers.ConnectorType),
		hConnectorVersion: textproto.CanonicalMIMEHeaderKey(o.Headers.ConnectorVersion),
		hRespCode:         textproto.CanonicalMIMEHeaderKey(o.Headers.ResponseCode),
		pairs:             newPairing(o.PendingTTL, o.MaxPending, o.MaxCompleted),
		inv:               newInventory(),
		closing:           make(chan struct{}),
		allowedNets:       parsePrefixes(o.AllowedNetworks),
	}
	s.pairs.onExpire = s.expired
	s.pairs.onForget = func() { s.counters.forgotten.Add(1) }
	s.latency.Store(int64(o.Latency))
	s.failStatus.Store(int64(o.FailStatus))
	if o.FailFor > 0 {
		s.failUntil.Store(time.Now().Add(o.FailFor).UnixNano())
	}

	m, collectors := newMetrics(func() float64 {
		s.pairs.sweepAll(s.now())
		return float64(s.pairs.pendingCount.Load())
	})
	s.metrics = m
	own := prometheus.NewRegistry()
	for _, c := range collectors {
		own.MustRegister(c)
		if reg != nil {
			if err := reg.Register(c); err != nil {
				log.Warn("devnode metrics not registered with the caller's registry; /metrics still serves them", "error", err)
			}
		}
	}

	// Exact paths only: a mux would redirect unclean paths, which for a message
	// missing its request id would hide the 400.
	s.control = map[string]http.Handler{
		"/":               http.HandlerFunc(s.serveUI),
		"/inventory":      http.HandlerFunc(s.serveInventory),
		"/stats":          http.HandlerFunc(s.serveStats),
		"/metrics":        promhttp.HandlerFor(own, promhttp.HandlerOpts{}),
		DefaultHealthPath: http.HandlerFunc(s.serveHealth),
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Start binds addr (e.g. "127.0.0.1:0") and serves in the background until Shutdown.
// ctx bounds only the bind. FailFor counts from here.
func (s *Server) Start(ctx context.Context, addr string) (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil, ErrAlreadyStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if s.opts.FailFor > 0 {
		s.failUntil.Store(s.now().Add(s.opts.FailFor).UnixNano())
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.served = make(chan struct{})
	s.started = true
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("devnode stopped serving", "error", err)
		}
	}(s.srv, s.served)
	s.log.Info("devnode listening", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// Shutdown stops accepting connections, cuts short replies waiting on Latency and
// waits for in-flight ones until ctx ends. Safe to call without Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOne.Do(func() { close(s.closing) })
	s.delayOnce.Do(func() {})
	if s.delay != nil {
		s.delay.Close()
	}
	s.mu.Lock()
	srv, served := s.srv, s.served
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		// Out of time: drop the remaining connections so the Serve goroutine ends.
		_ = srv.Close()
	}
	select {
	case <-served:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("shut down devnode: %w", err)
	}
	return nil
}

// SetFailing makes the server answer status (0 = the configured FailStatus) to every
// message and health check for d from now; d <= 0 stops failing.
func (s *Server) SetFailing(status int, d time.Duration) {
	if d <= 0 {
		s.failUntil.Store(0)
		return
	}
	if status == 0 {
		status = s.opts.FailStatus
	}
	s.failStatus.Store(int64(status))
	s.failUntil.Store(s.now().Add(d).UnixNano())
}

// SetLatency sets the delay added to every reply; 0 removes it.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(max(d, 0))) }

// Inventory returns the endpoints seen in completed calls, sorted by host, path, method.
func (s *Server) Inventory() []Endpoint { return s.inv.snapshot(s.now()) }

// Stats returns the counters, after dropping expired request halves.
func (s *Server) Stats() Stats {
	s.pairs.sweepAll(s.now())
	c := &s.counters
	st := Stats{
		Requests:        c.requests.Load(),
		Responses:       c.responses.Load(),
		Completed:       c.completed.Load(),
		Duplicates:      c.duplicates.Load(),
		Pending:         s.pairs.pendingCount.Load(),
		MissingResponse: c.missingResponse.Load(),
		Failed:          c.failed.Load(),
		Forgotten:       c.forgotten.Load(),
		Rejects:         map[string]int64{},
		OwnHost:         c.ownHost.Load(),
	}
	if h := s.ownHostSeen.Load(); h != nil {
		st.OwnHostSeen = *h
	}
	for r := Reason(0); r < numReasons; r++ {
		if n := c.rejects[r].Load(); n > 0 {
			st.Rejects[r.String()] = n
		}
	}
	return st
}

// Calls returns the remembered completed calls (at most MaxCompleted), ordered by the
// arrival of their response message.
func (s *Server) Calls() []Call { return s.pairs.calls() }

// DeliveredIDs maps each remembered completed request id to the number of times its
// request message arrived: 1 when delivered exactly once, more when the connector sent
// duplicates (which were rejected). Ids never completed are absent. A connector
// node id also counts under its log request id (LogRequestID), summed over the
// node ids carrying it, unless that is itself a completed id. (The connector
// keeps only a log request id's header-token characters: look ids up with
// AsNodeIDPrefix, or use CheckDelivered, which does.)
func (s *Server) DeliveredIDs() map[string]int {
	byID, byLog := s.pairs.delivered()
	for l, v := range byLog {
		if _, taken := byID[l]; !taken {
			byID[l] = v[0]
		}
	}
	return byID
}

// CheckDelivered compares ids with what completed here: missing never
// completed, repeated had their request message arrive more than once. It is
// the at-least-once check of every end-to-end test and of the demo. An id
// that no call completed under is taken as a log request id (see
// AsNodeIDPrefix): it is delivered
// when node ids carrying it completed, and repeated when more than one did
// (the same log event sent under two node ids) or one arrived twice. Tests
// whose calls share a log request id on purpose check node ids instead.
func (s *Server) CheckDelivered(ids []string) (missing, repeated []string) {
	byID, byLog := s.pairs.delivered()
	for _, id := range ids {
		n, ok := byID[id]
		if !ok {
			n = byLog[AsNodeIDPrefix(id)][0]
		}
		switch {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			repeated = append(repeated, id)
		}
	}
	return missing, repeated
}

func (s *Server) expired(c *Call) {
	s.counters.missingResponse.Add(1)
	s.metrics.missing.Inc()
	s.log.Warn("devnode dropped a request message whose response never came (flow missing response)",
		"request_id", c.ID, "method", c.Method, "host", c.Host, "path", c.Path, "waited", s.opts.PendingTTL)
}

// failing returns the injected failure status, or 0.
func (s *Server) failing(now time.Time) int {
	until := s.failUntil.Load()
	if until == 0 || now.UnixNano() >= until {
		return 0
	}
	return int(s.failStatus.Load())
}

// wait sleeps for the configured latency; false if the client left or the server is
// shutting down first.
func (s *Server) wait(r *http.Request) bool {
	d := time.Duration(s.latency.Load())
	if d <= 0 {
		return true
	}
	s.sleeping.Add(1)
	defer s.sleeping.Add(-1)
	s.delayOnce.Do(func() { s.delay = delay.New() })
	if s.delay == nil {
		return false // shut down before any reply was held
	}
	return s.delay.Wait(d, r.Context().Done(), s.closing)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Control requests are told apart from forwarded messages by the missing request
	// id: the connector forwards real API paths such as /inventory with any method.
	if _, isMessage := r.Header[s.hRequestID]; !isMessage && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if h, ok := s.control[r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
	}
	s.serveMessage(w, r)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !s.wait(r) {
		return
	}
	s.metrics.nodeSeen.WithLabelValues("health").Inc()
	if code := s.failing(s.now()); code != 0 {
		writeText(w, code, bodyFailing)
		return
	}
	writeText(w, http.StatusOK, bodyHealthy)
}

func (s *Server) serveInventory(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.Inventory())
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.Stats())
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encode json: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// parsePrefixes parses CIDRs Validate has checked.
func parsePrefixes(cidrs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}
