// Package firehose is the Amazon Data Firehose HTTP endpoint source: it
// authenticates deliveries, decodes their records, submits them to the
// pipeline as one batch and acknowledges only once every call has settled,
// so that Firehose retries (or backs up to S3) anything the node did not take.
package firehose

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

// Firehose request headers.
const (
	HeaderAccessKey = "X-Amz-Firehose-Access-Key"
	HeaderRequestID = "X-Amz-Firehose-Request-Id"
	HeaderSourceARN = "X-Amz-Firehose-Source-Arn"
)

// settleGrace is how long past the ack deadline the receiver waits for the
// pipeline to report abandoned calls before it gives up on the settlement.
const settleGrace = 5 * time.Second

// Submitter is the pipeline as the receiver uses it.
type Submitter interface {
	Submit(ctx context.Context, b pipeline.Batch) (*pipeline.Settlement, error)
}

// Receiver is the Firehose HTTP endpoint.
type Receiver struct {
	cfg   Config
	sub   Submitter
	log   *slog.Logger
	m     *metrics
	keys  *keyring
	certs *certReloader

	sem   chan struct{}
	acked *IDSet // Firehose request ids whose every call settled
	calls *IDSet // call ids delivered, shared by all deliveries

	flightMu sync.Mutex
	flights  map[string]*flight // deliveries in progress, by request id

	// baseCtx parents every delivery; cancelled when Shutdown runs out of time,
	// which abandons the calls still in flight.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	active sync.WaitGroup // deliveries being handled, so Shutdown can wait for them

	srv       *http.Server
	ln        net.Listener
	ready     atomic.Bool
	serveDone chan struct{}
}

// flight lets a retry that arrives while its original is still being
// delivered wait for that outcome instead of sending the calls twice.
type flight struct {
	done    chan struct{}
	settled bool
	code    int    // the reply when not settled: 503, or 413 for a delivery over a limit
	msg     string // its errorMessage when a limit, not the node, was the reason
}

// New builds a receiver; it fails when the keys or the certificate cannot be loaded.
func New(cfg Config, sub Submitter, reg prometheus.Registerer, log *slog.Logger) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sub == nil {
		return nil, errors.New("create firehose receiver: nil submitter")
	}
	keys, err := newKeyring(cfg.AccessKeys, cfg.AccessKeyFile, log)
	if err != nil {
		return nil, fmt.Errorf("create firehose receiver: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("create firehose receiver: register metrics: %w", err)
	}
	r := &Receiver{
		cfg: cfg, sub: sub, log: log, m: m, keys: keys,
		sem:     make(chan struct{}, cfg.MaxConcurrentDeliveries),
		acked:   NewIDSet(cfg.DedupRequestIDs),
		calls:   NewIDSet(cfg.DedupCallIDs),
		flights: make(map[string]*flight),
	}
	if cfg.TLS.Enabled() {
		if r.certs, err = newCertReloader(cfg.TLS, log); err != nil {
			return nil, fmt.Errorf("create firehose receiver: %w", err)
		}
	}
	r.baseCtx, r.cancelBase = context.WithCancel(context.Background())
	return r, nil
}

// Start listens and serves in the background.
func (r *Receiver) Start(_ context.Context) error {
	ln, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("start firehose receiver: listen on %s: %w", r.cfg.Listen, err)
	}
	r.ln = ln
	r.srv = &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// The whole exchange is bounded by the ack deadline (body read included);
		// the write timeout leaves room to send the 503 that follows it.
		ReadTimeout:  r.cfg.AckDeadline,
		WriteTimeout: r.cfg.AckDeadline + settleGrace + 5*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		BaseContext:  func(net.Listener) context.Context { return r.baseCtx },
	}
	if r.certs != nil {
		r.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.certs.getCertificate}
	}
	r.serveDone = make(chan struct{})
	go func() {
		defer close(r.serveDone)
		var err error
		if r.certs != nil {
			err = r.srv.ServeTLS(ln, "", "")
		} else {
			err = r.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("firehose endpoint stopped serving", "addr", ln.Addr().String(), "err", err)
		}
	}()
	r.ready.Store(true)
	r.log.Info("firehose endpoint listening", "addr", ln.Addr().String(), "path", r.cfg.Path, "tls", r.certs != nil)
	return nil
}

// Shutdown stops accepting deliveries and waits for those in progress to be
// answered. If ctx ends first, their remaining calls are abandoned (they are
// answered 503, so Firehose retries them) and connections are closed.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.ready.Store(false)
	defer r.cancelBase()
	if r.srv == nil {
		return nil
	}
	err := r.srv.Shutdown(ctx)
	if err != nil {
		// Out of time: abandon the calls still in flight; their deliveries
		// answer 503 at once (if the connection is still there) and end.
		r.cancelBase()
		err = errors.Join(fmt.Errorf("shut down firehose receiver: %w", err), r.srv.Close())
	}
	<-r.serveDone
	done := make(chan struct{})
	go func() { r.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(settleGrace):
		err = errors.Join(err, errors.New("shut down firehose receiver: deliveries still running after their calls were abandoned"))
	}
	return err
}

// Addr is the listening address, nil before Start.
func (r *Receiver) Addr() net.Addr {
	if r.ln == nil {
		return nil
	}
	return r.ln.Addr()
}

// Ready reports whether the endpoint is serving (false once shutting down).
func (r *Receiver) Ready() bool { return r.ready.Load() }

// Handler is the endpoint's HTTP handler (delivery path and health path).
func (r *Receiver) Handler() http.Handler { return http.HandlerFunc(r.serveHTTP) }

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case r.cfg.Path:
		r.serveDelivery(w, req)
	case r.cfg.HealthPath:
		if r.cfg.HealthPath == "" {
			http.NotFound(w, req)
			return
		}
		if !r.ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "OK\n")
	default:
		http.NotFound(w, req)
	}
}

func (r *Receiver) serveDelivery(w http.ResponseWriter, req *http.Request) {
	arrived := time.Now()
	id := req.Header.Get(HeaderRequestID)
	log := r.log.With("request_id", id, "remote", req.RemoteAddr)
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.fail(w, http.StatusMethodNotAllowed, id, "use POST")
		return
	}
	// Authenticate before reading a byte of the body.
	keys := req.Header.Values(HeaderAccessKey)
	if len(keys) == 0 || !r.keys.match(keys[0]) {
		r.m.authFailures.Inc()
		reason := "the access key is wrong"
		if len(keys) == 0 {
			reason = "the " + HeaderAccessKey + " header is missing"
		}
		log.Warn("refused a Firehose delivery: "+reason+"; check the delivery stream's access key against firehose.access_keys",
			"source_arn", req.Header.Get(HeaderSourceARN))
		r.fail(w, http.StatusUnauthorized, id, "unauthorized: "+reason)
		return
	}
	// A declared length over the cap is refused before a slot is taken or a
	// byte read (the server then closes the connection rather than drain it).
	if limit := wireLimit(r.cfg.MaxBodyBytes); req.ContentLength > limit {
		log.Warn("refused a Firehose delivery: declared body too large; lower the stream's buffer size or raise firehose.max_body_bytes",
			"content_length", req.ContentLength, "max_body_bytes", r.cfg.MaxBodyBytes)
		r.fail(w, http.StatusRequestEntityTooLarge, id, fmt.Sprintf("Content-Length %d exceeds the limit of %d bytes", req.ContentLength, limit))
		return
	}
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	default:
		log.Warn("refused a Firehose delivery: too many in progress; Firehose will retry", "max_concurrent_deliveries", r.cfg.MaxConcurrentDeliveries)
		r.fail(w, http.StatusTooManyRequests, id, fmt.Sprintf("too many deliveries in progress (limit %d); retry later", r.cfg.MaxConcurrentDeliveries))
		return
	}
	r.active.Add(1)
	defer r.active.Done()
	r.m.inProgress.Inc()
	defer r.m.inProgress.Dec()

	// The deadline runs from arrival: Firehose's own timeout does too.
	ctx, cancel := context.WithDeadline(r.baseCtx, arrived.Add(r.cfg.AckDeadline))
	defer cancel()

	// A slot waits for body bytes at most body_read_timeout: a client that
	// declares a body and trickles it (or sends nothing) frees the slot then.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(r.bodyDeadline(arrived))
	body := &countingReader{r: http.MaxBytesReader(w, req.Body, wireLimit(r.cfg.MaxBodyBytes))}
	fr, err := decodeBounded(body, req.Header.Get("Content-Encoding"), r.cfg.MaxBodyBytes, r.cfg.MaxRecords)
	r.m.bytes.Add(float64(body.n))
	if err != nil {
		var tooBig *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(body.err, &tooBig), errors.Is(err, ErrTooLarge):
			log.Warn("refused a Firehose delivery: body too large; lower the stream's buffer size or raise firehose.max_body_bytes", "max_body_bytes", r.cfg.MaxBodyBytes)
			r.fail(w, http.StatusRequestEntityTooLarge, id, fmt.Sprintf("request body exceeds %d bytes", r.cfg.MaxBodyBytes))
		case errors.Is(err, errTooManyRecords):
			r.m.limited.WithLabelValues("records").Inc()
			log.Warn("refused a Firehose delivery: too many records; raise firehose.max_records if the stream really sends that many", "max_records", r.cfg.MaxRecords)
			r.fail(w, http.StatusRequestEntityTooLarge, id, fmt.Sprintf("more than %d records in one delivery", r.cfg.MaxRecords))
		case errors.As(body.err, &ne) && ne.Timeout():
			r.m.limited.WithLabelValues("body_read_timeout").Inc()
			log.Warn("refused a Firehose delivery: its body did not arrive within firehose.body_read_timeout",
				"body_read_timeout", r.cfg.BodyReadTimeout, "bytes_read", body.n)
			w.Header().Set("Connection", "close")
			r.fail(w, http.StatusRequestTimeout, id, "the request body did not arrive in time; retry")
		case body.err != nil:
			log.Warn("could not read a Firehose delivery body", "err", body.err)
			r.fail(w, http.StatusBadRequest, id, "read body: "+body.err.Error())
		default:
			log.Warn("refused a malformed Firehose delivery", "err", err)
			r.fail(w, http.StatusBadRequest, id, err.Error())
		}
		return
	}
	// The body is in: the rest of the exchange is bounded by the ack deadline.
	_ = rc.SetReadDeadline(time.Time{})
	if id == "" {
		r.fail(w, http.StatusBadRequest, fr.RequestID, "the "+HeaderRequestID+" header is missing")
		return
	}
	if id != fr.RequestID {
		log.Warn("refused a Firehose delivery: header and body request ids differ", "body_request_id", fr.RequestID)
		r.fail(w, http.StatusBadRequest, id, fmt.Sprintf("%s header %q does not match body requestId %q", HeaderRequestID, id, fr.RequestID))
		return
	}
	r.m.records.Add(float64(len(fr.Records)))

	if r.acked.Contains(id) {
		r.m.duplicates.WithLabelValues("request").Inc()
		log.Debug("acknowledged a retry of a delivery already acknowledged")
		r.ack(w, id, arrived)
		return
	}
	f, leader := r.joinFlight(id)
	if !leader {
		// A retry overlapping its original: wait for that one's outcome.
		r.m.duplicates.WithLabelValues("request").Inc()
		select {
		case <-f.done:
		case <-ctx.Done():
		}
		r.reply(w, id, arrived, f, log)
		return
	}
	f.settled, f.code, f.msg = r.deliver(ctx, fr, log)
	r.endFlight(id, f)
	r.reply(w, id, arrived, f, log)
}

func (r *Receiver) reply(w http.ResponseWriter, id string, arrived time.Time, f *flight, log *slog.Logger) {
	select {
	case <-f.done:
		if f.settled {
			r.ack(w, id, arrived)
			return
		}
		if f.msg != "" {
			r.fail(w, f.code, id, f.msg)
			return
		}
	default:
	}
	log.Warn("Firehose delivery not acknowledged: the node did not take every call before firehose.ack_deadline; Firehose will retry the batch",
		"ack_deadline", r.cfg.AckDeadline)
	r.fail(w, http.StatusServiceUnavailable, id, "not every call was delivered to the node before the ack deadline; retry")
}

// Chunk bounds of the submissions of one delivery: the deadline is checked
// between chunks, so past it at most one chunk's decoding is still done.
const (
	chunkRecords = 500
	chunkBytes   = 16 << 20
)

// deliver checks what the records decompress to, then submits them in chunks
// and reports whether every call settled; if not, the status to answer and,
// when a limit rather than the node was the reason, the message. The chunks
// share the delivery's context: abandoning one abandons all, and the ack
// waits for all.
func (r *Receiver) deliver(ctx context.Context, fr *Request, log *slog.Logger) (bool, int, string) {
	deadline, _ := ctx.Deadline()
	sizes, err := measureRecords(ctx, fr.Records, r.cfg.MaxDecompressedBytesPerDelivery)
	switch {
	case errors.Is(err, errTooMuchInflation):
		r.m.limited.WithLabelValues("decompressed_bytes").Inc()
		log.Warn("refused a Firehose delivery: its records decompress to more than firehose.max_decompressed_bytes_per_delivery",
			"max_decompressed_bytes_per_delivery", r.cfg.MaxDecompressedBytesPerDelivery, "err", err)
		return false, http.StatusRequestEntityTooLarge, fmt.Sprintf("the records decompress to more than %d bytes (firehose.max_decompressed_bytes_per_delivery)", r.cfg.MaxDecompressedBytesPerDelivery)
	case err != nil:
		r.m.limited.WithLabelValues("deadline").Inc()
		log.Warn("Firehose delivery not acknowledged: checking its records took past firehose.ack_deadline", "err", err)
		return false, http.StatusServiceUnavailable, msgDecodeDeadline
	}
	var dedup pipeline.Deduper
	if r.cfg.DedupCallIDs > 0 {
		dedup = r.calls
	}
	var settlements []*pipeline.Settlement
	submitted := true
	for _, c := range chunks(sizes, chunkRecords, chunkBytes) {
		if ctx.Err() != nil {
			r.m.limited.WithLabelValues("deadline").Inc()
			log.Warn("Firehose delivery not acknowledged: firehose.ack_deadline passed while its records were being decoded",
				"records_submitted", c[0], "records", len(fr.Records))
			submitted = false
			break
		}
		b := pipeline.Batch{Source: "firehose/" + fr.RequestID, Format: pipeline.FormatCloudWatchLogs, Dedup: dedup}
		for i := c[0]; i < c[1]; i++ {
			if len(fr.Records[i]) == 0 {
				continue
			}
			b.Records = append(b.Records, pipeline.Record{ID: strconv.Itoa(i), Data: fr.Records[i]})
		}
		if len(b.Records) == 0 {
			continue
		}
		s, err := r.sub.Submit(ctx, b)
		if err != nil {
			log.Warn("could not submit a Firehose delivery", "err", err)
			submitted = false
			break
		}
		settlements = append(settlements, s)
	}
	// The pipeline abandons the calls when ctx ends and then closes Done; the
	// timer only guards against a settlement that never reports.
	guard := time.NewTimer(time.Until(deadline) + settleGrace)
	defer guard.Stop()
	var out pipeline.Outcome
	for _, s := range settlements {
		select {
		case <-s.Done():
		case <-guard.C:
			log.Error("pipeline did not settle a Firehose delivery after its deadline; answering 503")
			return false, http.StatusServiceUnavailable, ""
		}
		out.Add(s.Outcome())
	}
	out.Records = len(fr.Records)
	if out.Duplicates > 0 {
		r.m.duplicates.WithLabelValues("call").Add(float64(out.Duplicates))
	}
	log.Debug("Firehose delivery settled", "records", out.Records, "events", out.Events, "calls", out.Calls,
		"delivered", out.Delivered, "rejected", out.Rejected, "duplicates", out.Duplicates,
		"decode_errors", out.DecodeErrors, "parse_errors", out.ParseErrors, "abandoned", out.Abandoned)
	switch {
	case !submitted && ctx.Err() != nil:
		return false, http.StatusServiceUnavailable, msgDecodeDeadline
	case !submitted || !out.Settled():
		return false, http.StatusServiceUnavailable, ""
	}
	return true, http.StatusOK, ""
}

const msgDecodeDeadline = "the ack deadline passed while the records were being decoded; retry"

func (r *Receiver) joinFlight(id string) (*flight, bool) {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if f, ok := r.flights[id]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	r.flights[id] = f
	return f, true
}

func (r *Receiver) endFlight(id string, f *flight) {
	if f.settled {
		r.acked.Add(id) // before the flight ends, so no retry slips between the two
	}
	r.flightMu.Lock()
	delete(r.flights, id)
	r.flightMu.Unlock()
	close(f.done)
}

type ackBody struct {
	RequestID    string `json:"requestId"`
	Timestamp    int64  `json:"timestamp"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

func (r *Receiver) ack(w http.ResponseWriter, id string, arrived time.Time) {
	r.write(w, http.StatusOK, ackBody{RequestID: id, Timestamp: time.Now().UnixMilli()})
	r.m.ackDuration.Observe(time.Since(arrived).Seconds())
}

func (r *Receiver) fail(w http.ResponseWriter, code int, id, msg string) {
	r.write(w, code, ackBody{RequestID: id, Timestamp: time.Now().UnixMilli(), ErrorMessage: msg})
}

func (r *Receiver) write(w http.ResponseWriter, code int, b ackBody) {
	r.m.deliveries.WithLabelValues(strconv.Itoa(code)).Inc()
	buf, _ := json.Marshal(b)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(code)
	_, _ = w.Write(buf)
}

// wireLimit caps the body as sent: gzip can make incompressible data slightly
// bigger than the decoded cap, so allow that much more.
func wireLimit(maxDecoded int64) int64 { return maxDecoded + maxDecoded/64 + 64<<10 }

// countingReader counts bytes read and remembers the first read error, so a
// transport failure is told apart from a malformed body.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
