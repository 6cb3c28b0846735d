// Package node delivers API calls to the Wallarm Native Node (connector-server mode)
// as the contract's `raw` profile: per call a request message, then, once the node has
// accepted it, a response message carrying the status, both to the same target.
//
// Delivery is at-least-once and never gives up while its context lives: retryable
// failures (408, 429, 5xx, timeouts, connection errors) are retried with exponential
// backoff and full jitter, honouring Retry-After, so a node outage stops the source
// instead of dropping calls. Permanent rejections (other 4xx) settle the call with an
// error matching ErrRejected.
package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

const (
	snippetBytes = 512      // of a rejection's reply body, for the log
	drainBytes   = 64 << 10 // reply bodies up to this are drained so the connection is reused
)

// Client delivers calls to one node. Safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	pool   *connPool
	dialer *net.Dialer
	tlsCfg *tls.Config // nil for plain http

	scheme       string
	dialHost     string // host:port of node.url, as given
	dialAddr     string // host:port with the scheme's default port
	nodeHostHdr  string // host of node.url as a Host header (host_mode node, the probe)
	basePath     string // escaped url path + path prefix, no trailing slash
	healthURL    *url.URL
	healthTarget string // request target of the probe
	healthText   string
	probeMethod  string

	prof      profile     // the wire shape of a call's two messages (node.profile)
	probeHdrs []hdrLine   // of the health check, after Host
	static    http.Header // the headers every message carries, canonical names

	statuses *statusSet

	upMu sync.Mutex
	up   atomic.Bool

	notHTTP atomic.Bool // the node's last answer was not HTTP: named once until it answers HTTP again

	// "The node is back": failing is set by a retryable failure; the next answer
	// closes back (and replaces it), waking the calls sleeping out a backoff.
	failing  atomic.Bool
	back     atomic.Pointer[chan struct{}]
	lastBack atomic.Int64 // unix nanos of the last wake-up, to space them

	// The failure episode, for its log lines (retry path only).
	epMu      sync.Mutex
	epReasons map[string]bool // reasons already warned about; nil: no episode
	epRetries int64
	epStart   time.Time
	epEnded   time.Time       // when the last episode ended
	epPrev    map[string]bool // its reasons: replies already in flight when it ended are not news
	epNews    bool            // a reason new in this episode was logged: its end is logged too

	half *halfSent
}

// New builds a client; it opens no connection. A nil reg or log disables metrics
// export or logging.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate node config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry() // metrics kept but not exported
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse node.url: %w", err)
	}
	c := &Client{
		half:        newHalfSent(),
		cfg:         cfg,
		log:         log,
		scheme:      u.Scheme,
		dialHost:    u.Host,
		static:      http.Header{},
		probeMethod: http.MethodGet,
	}
	c.nodeHostHdr = removeZone(u.Host)
	back := make(chan struct{})
	c.back.Store(&back)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	c.dialAddr = net.JoinHostPort(u.Hostname(), port)

	root := strings.TrimRight(u.EscapedPath(), "/")
	c.basePath = root
	if p := strings.TrimRight(cfg.PathPrefix, "/"); p != "" {
		c.basePath += escapePath(p)
	}
	if cfg.HealthPath != "" {
		p := root + escapePath(cfg.HealthPath)
		c.healthURL = &url.URL{Scheme: u.Scheme, Host: u.Host, Opaque: p}
		c.healthTarget = c.healthURL.RequestURI()
		c.healthText = u.Scheme + "://" + u.Host + p // an Opaque URL prints without its host
	}

	c.static[textproto.CanonicalMIMEHeaderKey(cfg.Headers.ConnectorType)] = []string{cfg.ConnectorType}
	c.static[textproto.CanonicalMIMEHeaderKey(cfg.Headers.ConnectorVersion)] = []string{cfg.ConnectorVersion}
	for k, v := range cfg.ExtraHeaders {
		c.static[textproto.CanonicalMIMEHeaderKey(k)] = []string{v}
	}
	c.buildProfile()
	if len(cfg.Filters.Statuses) > 0 {
		c.statuses = new(statusSet)
		for _, s := range cfg.Filters.Statuses {
			r, _ := parseStatusPattern(s) // checked by Validate
			c.statuses.add(r[0], r[1])
		}
	}

	if u.Scheme == "https" {
		if c.tlsCfg, err = cfg.TLS.ClientConfig(); err != nil {
			return nil, err
		}
		if c.tlsCfg.ServerName == "" { // verify the node's certificate for its host, as net/http does
			c.tlsCfg.ServerName = u.Hostname()
		}
	} else if cfg.TLS != (TLSConfig{}) {
		log.Warn("node.tls is set but node.url is plain http: TLS settings are ignored", "url", cfg.URL)
	}

	maxConns := cfg.MaxConnections
	if maxConns == 0 {
		maxConns = cfg.Concurrency
	}
	// No proxy: the node is reached directly (node allowed_networks names our egress).
	c.dialer = &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	c.pool = newConnPool(maxConns, cfg.PipelineDepth, cfg.ReplyTimeout, c.dialNode)

	if c.m, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("register node metrics: %w", err)
	}
	return c, nil
}

// ClientConfig builds the TLS client configuration node.tls describes
// (ServerName stays empty when unset: the caller fills in the node's host).
func (tc TLSConfig) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         tc.ServerName,
		InsecureSkipVerify: tc.InsecureSkipVerify, //nolint:gosec // documented as for tests only
	}
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read node.tls.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("load node.tls.ca_file %s: no PEM certificate found", tc.CAFile)
		}
		cfg.RootCAs = pool
	}
	if tc.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load node.tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Filter reports whether the call should be forwarded (node.filters).
func (c *Client) Filter(call *accesslog.APICall) bool {
	for _, m := range c.cfg.Filters.SkipMethods {
		if strings.EqualFold(call.Method, m) {
			return false
		}
	}
	return c.statuses == nil || c.statuses.has(call.Status)
}

// Deliver sends the call's request message and then its response message.
// It returns nil once the node accepted both (2xx or 403), an *AlreadyHeldError
// (ErrAlreadyHeld: delivered, too) when the node's reply shows it held the whole
// call already, an error matching ErrRejected when one was rejected for good, or
// the context's error (wrapped) when ctx ended first; retryable failures are
// retried without limit meanwhile.
func (c *Client) Deliver(ctx context.Context, call *accesslog.APICall) error {
	start := time.Now()
	c.m.inFlight.Inc()
	defer c.m.inFlight.Dec()

	m, label, err := c.newMessage(call)
	if err != nil {
		c.m.rejected.WithLabelValues("invalid").Inc()
		c.m.unsendable.WithLabelValues(label).Inc()
		c.log.Warn("node call not sendable, skipped", "request_id", encodeID(call.RequestID), "reason", label, "error", err)
		return err
	}
	defer freeMessage(m) // nothing holds m once the call is settled: the bytes sent are copies
	// A call cut short earlier may still be held by the node: its request
	// accepted (only the response is owed: a second request message would be
	// refused as a duplicate request id), or maybe accepted (its fate unseen).
	prior := c.half.take(m.id)
	if prior == halfAccepted {
		_, err := c.send(ctx, m, kindResponse, false)
		var re *RejectedError
		switch {
		case err == nil, errors.Is(err, ErrAlreadyHeld):
			c.delivered(start, err)
			return err
		case errors.As(err, &re) && re.Code == http.StatusBadRequest:
			// The node no longer holds the request half (it stopped waiting
			// for the response, e.g. before a late Firehose retry): send the
			// whole pair again; a 400 to the request then means it is there.
			c.log.Info("node refused the owed response of a call cut in half; sending the pair again", "request_id", m.id)
			prior = halfMaybe
		case errors.Is(err, ErrRejected):
			return err
		default:
			c.half.add(m.id, halfAccepted)
			return err
		}
	}
	unsure, err := c.send(ctx, m, kindRequest, prior == halfMaybe)
	if err != nil {
		if unsure && !errors.Is(err, ErrRejected) {
			c.half.add(m.id, halfMaybe)
		}
		return err
	}
	if _, err := c.send(ctx, m, kindResponse, false); err != nil {
		if errors.Is(err, ErrAlreadyHeld) {
			c.delivered(start, err)
		} else if !errors.Is(err, ErrRejected) {
			c.half.add(m.id, halfAccepted)
		}
		return err
	}
	c.delivered(start, nil)
	return nil
}

// delivered counts a call the node accepted; held is its *AlreadyHeldError, if any.
func (c *Client) delivered(start time.Time, held error) {
	c.m.duration.Observe(time.Since(start).Seconds())
	if held != nil {
		c.m.alreadyHeld.Inc()
	}
}

// send delivers one message, retrying until it is accepted, rejected, or ctx
// ends. unsure reports (and, passed in, assumes) that an attempt may have
// reached the node without its acceptance being seen: no reply, a reply cut
// by ctx, or a 5xx such as the node's own reply timeout, which answers after
// buffering the message.
func (c *Client) send(ctx context.Context, m *message, kind string, unsure bool) (bool, error) {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return unsure, fmt.Errorf("deliver %s message of call %q: %w", kind, m.id, err)
		}
		back := *c.back.Load()             // before the attempt: a return seen meanwhile still wakes us
		r, err := c.exchange(ctx, m, kind) // one attempt
		var reason string
		if err == nil {
			c.answersHTTP()
			c.m.countSent(kind, r.code)
			switch classifyStatus(r.code) {
			case accepted:
				c.setUp(true)
				c.nodeAnswered()
				return unsure, nil
			case rejected:
				c.setUp(true)
				c.nodeAnswered()
				if kind == kindRequest && r.code == http.StatusBadRequest && (unsure || saysDuplicate(r.snippet)) {
					// Most likely "duplicate request id": the node has this
					// request from the attempt we saw fail, or from a process
					// that delivered it before and went away (crash, another
					// Lambda environment, a Kinesis lease that moved) with
					// the response still owed. Send the response; if the
					// node really had nothing, it rejects that too.
					// Debug: a replay of the same input meets this once per call.
					c.log.Debug("node refused a resent request message; assuming an earlier attempt reached it",
						"request_id", m.id, "body", r.snippet)
					return unsure, nil
				}
				if kind == kindResponse && r.code == http.StatusBadRequest && saysDuplicate(r.snippet) {
					// The node already completed this call: an earlier
					// attempt (ours, cut mid-flight, or a previous owner's)
					// delivered the response. Delivered, not rejected;
					// counted (already_held_total), not logged per call.
					c.log.Debug("node already holds the completed call", "request_id", m.id, "body", r.snippet)
					return unsure, &AlreadyHeldError{RequestID: m.id, Reason: r.snippet}
				}
				c.m.rejected.WithLabelValues(statusText(r.code)).Inc()
				c.log.Warn("node rejected message, call skipped",
					"request_id", m.id, "message", kind, "code", r.code, "body", r.snippet,
					"method", m.method, "host", m.fwdHost, "target", m.target)
				return unsure, &RejectedError{RequestID: m.id, Message: kind, Code: r.code, Reason: r.snippet}
			}
			c.setUp(r.code < 500)
			unsure = unsure || r.code >= 500
			reason = "http_" + statusText(r.code)
		} else {
			if ctxErr := ctx.Err(); ctxErr != nil {
				// Cut mid-flight: the message may have reached the node.
				return true, fmt.Errorf("deliver %s message of call %q: %w", kind, m.id, ctxErr)
			}
			c.setUp(false)
			unsure = true
			reason = errorReason(err)
			c.m.errors.WithLabelValues(reason).Inc()
			c.noteNotHTTP(err)
		}
		c.m.retries.WithLabelValues(reason).Inc()
		firstOfReason := c.retrying(reason)
		delay := c.backoff(attempt, r.retryAfter, r.hasRetryAfter)
		attrs := []any{"request_id", m.id, "message", kind, "reason", reason, "attempt", attempt + 1, "delay", delay}
		if err != nil {
			attrs = append(attrs, "error", err)
		} else if r.snippet != "" {
			attrs = append(attrs, "body", r.snippet)
		}
		// One warning per reason per failure episode, not one per call and
		// attempt: an outage with a full pipeline would flood the log.
		level := slog.LevelDebug
		if firstOfReason && reason != "not_http" { // not_http: named by noteNotHTTP
			level = slog.LevelWarn
			attrs = append(attrs, "note", "further retries for this reason are logged at debug until the node answers")
		}
		msg := "node message not accepted, will retry"
		if err == nil && r.code == http.StatusInternalServerError {
			// Named so that a user does not hunt for a node crash: the contract's
			// reply to a message it held past its timeout (app_reply_timeout_code).
			msg = "node answered 500, which it sends when its connector.app_reply_timeout passes (among other causes); will retry"
		}
		c.log.Log(ctx, level, msg, attrs...)
		if r.hasRetryAfter {
			back = nil // the node asked for this wait: another call's success does not end it
		}
		if err := c.sleep(ctx, delay, back); err != nil {
			return unsure, fmt.Errorf("deliver %s message of call %q: %w", kind, m.id, err)
		}
	}
}

// noteNotHTTP names, once until the node answers HTTP again, a reply that is
// not HTTP at all: a configuration error no retry will fix, but retries go on
// (the port may be right and the node still starting behind something else).
func (c *Client) noteNotHTTP(err error) {
	var nh *notHTTPError
	if !errors.As(err, &nh) || !c.notHTTP.CompareAndSwap(false, true) {
		return
	}
	c.log.Error(fmt.Sprintf("the node at %s answered something that is not HTTP: check node.url's port", c.dialHost),
		"url", c.cfg.URL, "reply_start", nh.sample)
}

// answersHTTP ends a not-HTTP episode.
func (c *Client) answersHTTP() {
	if c.notHTTP.Load() && c.notHTTP.CompareAndSwap(true, false) {
		c.log.Info(fmt.Sprintf("the node at %s answers HTTP again", c.dialHost))
	}
}

// saysDuplicate reports whether a 400 reply's body names a duplicate
// ("duplicate request id", "duplicate response", DuplicateReqId).
func saysDuplicate(body string) bool {
	return strings.Contains(strings.ToLower(body), "duplicate")
}

type reply struct {
	code          int
	snippet       string
	retryAfter    time.Duration
	hasRetryAfter bool
}

// maxRetryAfter caps a node's Retry-After so that a wild value cannot stall the stream for hours.
const maxRetryAfter = 5 * time.Minute

// backoff is the wait before retry number attempt+1: the node's Retry-After when given,
// else exponential with full jitter (uniform in [0, min(max, initial*multiplier^attempt)]).
func (c *Client) backoff(attempt int, retryAfter time.Duration, has bool) time.Duration {
	if has {
		return min(retryAfter, max(maxRetryAfter, c.cfg.Retry.MaxBackoff))
	}
	r := c.cfg.Retry
	ceil := float64(r.InitialBackoff) * math.Pow(r.Multiplier, float64(attempt))
	if ceil > float64(r.MaxBackoff) || math.IsInf(ceil, 0) || math.IsNaN(ceil) {
		ceil = float64(r.MaxBackoff)
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// sleep waits out a backoff d, cut short when back closes (the node answered
// another call after failures): then the rest of the wait becomes a full-jitter
// pick in [0, wakeSpread], so a backlog drains in about that time without all
// its calls hitting the node in the same instant.
func (c *Client) sleep(ctx context.Context, d time.Duration, back <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-back:
	}
	left := d - time.Since(start)
	j := time.Duration(rand.Int64N(int64(c.wakeSpread()) + 1))
	if j >= left {
		j = max(left, 0)
	}
	t.Reset(j)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wakeSpread is the window the woken retries spread over: short enough that a
// backlog drains within about a second of the node's return, long enough that
// a pool's worth of reconnects does not land at once.
func (c *Client) wakeSpread() time.Duration {
	return min(c.cfg.Retry.MaxBackoff, max(c.cfg.Retry.InitialBackoff, 250*time.Millisecond))
}

// minWakeInterval spaces wake-ups: a node that fails one call in two (a
// half-broken backend) must not turn every success into a retry storm.
const minWakeInterval = time.Second

// nodeAnswered ends a failure episode: the first answer after retryable
// failures wakes the calls sleeping out their backoff.
func (c *Client) nodeAnswered() {
	if !c.failing.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := c.lastBack.Load()
	if now-last < int64(minWakeInterval) || !c.lastBack.CompareAndSwap(last, now) {
		return // failing stays set: a later answer wakes them
	}
	c.epMu.Lock()
	c.failing.Store(false)
	retries, since, news := c.epRetries, c.epStart, c.epNews
	c.epPrev, c.epEnded = c.epReasons, time.Now()
	c.epRetries, c.epReasons, c.epNews = 0, nil, false
	c.epMu.Unlock()
	next := make(chan struct{})
	close(*c.back.Swap(&next))
	level := slog.LevelInfo
	if !news {
		level = slog.LevelDebug // only stragglers of the last episode: nothing was warned
	}
	c.log.Log(context.Background(), level, "node answers again; calls waiting to retry go now",
		"retries", retries, "after", time.Since(since).Round(time.Millisecond))
}

// retrying starts or extends a failure episode and reports whether reason is
// new in it.
func (c *Client) retrying(reason string) bool {
	c.epMu.Lock()
	defer c.epMu.Unlock()
	if c.epReasons == nil {
		c.epReasons = map[string]bool{}
		c.epStart = time.Now()
		if c.epStart.Sub(c.epEnded) < minWakeInterval {
			// A reply sent before the node recovered can arrive after another
			// call's success (another connection, a pipelined reply): the
			// same reason right after the return line is the old episode's
			// straggler, not a new outage worth a second warning.
			maps.Copy(c.epReasons, c.epPrev)
		}
	}
	c.epRetries++
	c.failing.Store(true)
	if c.epReasons[reason] {
		return false
	}
	c.epReasons[reason] = true
	c.epNews = true
	return true
}

// setUp records whether the node answers; the lock is taken only on a change.
func (c *Client) setUp(v bool) {
	if c.up.Load() == v {
		return
	}
	c.upMu.Lock()
	defer c.upMu.Unlock()
	if c.up.Load() != v {
		c.up.Store(v)
		if v {
			c.m.up.Set(1)
		} else {
			c.m.up.Set(0)
		}
	}
}

// Up reports whether the last probe or message got an answer from the node
// (status below 500). False until the first answer.
func (c *Client) Up() bool { return c.up.Load() }

// Ready is a readiness check (telemetry.ReadyCheck): nil while Up, else why not,
// naming a node that does not speak HTTP (node.url's port) apart from one that
// does not answer.
func (c *Client) Ready(context.Context) error {
	switch {
	case c.Up():
		return nil
	case c.notHTTP.Load():
		return fmt.Errorf("the node at %s answers something that is not HTTP: check node.url's port", c.dialHost)
	default:
		return fmt.Errorf("the node at %s is not up (its last probe or message got no reply, or a 5xx): %w", c.dialHost, ErrNotReady)
	}
}

// ErrNotReady is returned by Probe when the node is reachable but not healthy.
var ErrNotReady = errors.New("node not ready")

// Probe checks the node: GET node.health_path must answer 2xx, or, with no health
// path, a TCP connection must open. It updates Up and the up gauge.
func (c *Client) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout+c.cfg.ReplyTimeout)
	defer cancel()
	err := c.probe(ctx)
	c.setUp(err == nil)
	return err
}

func (c *Client) probe(ctx context.Context) error {
	if c.healthURL == nil {
		conn, err := c.dialer.DialContext(ctx, "tcp", c.dialAddr)
		if err != nil {
			return fmt.Errorf("probe node at %s: %w", c.dialAddr, err)
		}
		return conn.Close()
	}
	r, err := c.exchange(ctx, nil, kindProbe)
	if err != nil {
		c.noteNotHTTP(err)
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return fmt.Errorf("probe node health %s: %w", c.healthText, err)
	}
	c.answersHTTP()
	if r.code < 200 || r.code > 299 {
		return fmt.Errorf("probe node health %s: status %d: %w", c.healthText, r.code, ErrNotReady)
	}
	c.nodeAnswered() // healthy: calls waiting out a backoff need not wait longer
	return nil
}

// Close closes idle connections. Deliveries still running keep theirs until they end.
func (c *Client) Close() { c.pool.closeIdle() }
