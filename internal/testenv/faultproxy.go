package testenv

import (
	"context"
	"errors"
	"hash/crc32"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Throttle is the answer a FaultProxy gives instead of forwarding a throttled request.
type Throttle struct {
	Status      int
	ContentType string
	Body        string
}

// The throttling answers of the real services (AWS JSON protocol errors).
var (
	KinesisThrottle = Throttle{Status: http.StatusBadRequest, ContentType: "application/x-amz-json-1.1",
		Body: `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}`}
	DynamoDBThrottle = Throttle{Status: http.StatusBadRequest, ContentType: "application/x-amz-json-1.0",
		Body: `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",` +
			`"message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}`}
)

// Faults is what a FaultProxy does to the requests it receives. Fractions are of requests,
// from 0 (none) to 1 (all), spread evenly (deterministic, not random): 0.5 is every second
// request. The zero value forwards everything untouched.
type Faults struct {
	// Latency delays every request before it is forwarded (or failed).
	Latency time.Duration
	// Hang: the request is read and never answered, until the client gives up or the proxy
	// closes. Clearing the fault does not release requests already hanging, as on a real
	// connection that went dead.
	Hang float64
	// Reset: the connection is reset (TCP RST) instead of answered.
	Reset float64
	// ThrottleFraction of requests gets the Throttle answer instead of being forwarded.
	ThrottleFraction float64
	Throttle         Throttle
}

// ProxyStats counts what a FaultProxy did.
type ProxyStats struct {
	Requests, Forwarded, Hung, Reset, Throttled int64
}

// FaultProxy is an HTTP reverse proxy on 127.0.0.1 in front of one endpoint (an emulator),
// with switchable faults on the wire. AWS SDK clients reach it as their endpoint URL.
type FaultProxy struct {
	// URL is the proxy's endpoint, e.g. http://127.0.0.1:41234.
	URL string

	srv       *http.Server
	transport *http.Transport
	rp        *httputil.ReverseProxy
	closing   chan struct{}
	closeOnce sync.Once

	mu                       sync.Mutex
	faults                   Faults
	hangs, resets, throttles spread
	requests, forwarded      atomic.Int64
	hung, reset, throttled   atomic.Int64
}

// spread picks a fraction of events evenly: the nth event is picked when floor(n*f) grows.
type spread struct{ n, picked int64 }

func (s *spread) next(f float64) bool {
	s.n++
	if f <= 0 {
		return false
	}
	if f >= 1 || int64(float64(s.n)*f) > s.picked {
		s.picked++
		return true
	}
	return false
}

// StartFaultProxy starts a proxy to target (a URL) on a free 127.0.0.1 port; it is closed
// when the test ends.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	p, err := NewFaultProxy(target)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewFaultProxy starts a proxy to target; Close stops it.
func NewFaultProxy(target string) (*FaultProxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, errors.New("start fault proxy: target must be a URL like http://127.0.0.1:4567, got " + strconv.Quote(target))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{
		URL:       "http://" + ln.Addr().String(),
		closing:   make(chan struct{}),
		transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // keep the host the client signed
		},
		Transport: p.transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "fault proxy: upstream: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)} // resets and hangs make it complain by design
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Set replaces the faults in force; fractions count from the next request on.
func (p *FaultProxy) Set(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.hangs, p.resets, p.throttles = spread{}, spread{}, spread{}
	p.mu.Unlock()
}

// Clear ends every fault: new requests are forwarded untouched.
func (p *FaultProxy) Clear() { p.Set(Faults{}) }

// Stats returns the counts so far.
func (p *FaultProxy) Stats() ProxyStats {
	return ProxyStats{Requests: p.requests.Load(), Forwarded: p.forwarded.Load(), Hung: p.hung.Load(),
		Reset: p.reset.Load(), Throttled: p.throttled.Load()}
}

// Close stops the proxy, releasing hanging requests and closing every connection.
func (p *FaultProxy) Close() {
	p.closeOnce.Do(func() {
		close(p.closing)
		_ = p.srv.Close()
		p.transport.CloseIdleConnections()
	})
}

type verdict int

const (
	forward verdict = iota
	hang
	reset
	throttle
)

func (p *FaultProxy) decide() (Faults, verdict) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults
	// Every spread advances on every request, so each fraction holds on its own.
	h, r, th := p.hangs.next(f.Hang), p.resets.next(f.Reset), p.throttles.next(f.ThrottleFraction)
	switch {
	case h:
		return f, hang
	case r:
		return f, reset
	case th:
		return f, throttle
	}
	return f, forward
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f, v := p.decide()
	if f.Latency > 0 && !p.sleep(r.Context(), f.Latency) {
		return
	}
	switch v {
	case hang:
		p.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-p.closing:
		}
	case reset:
		p.reset.Add(1)
		p.resetConn(w)
	case throttle:
		p.throttled.Add(1)
		w.Header().Set("Content-Type", f.Throttle.ContentType)
		// DynamoDB signs its bodies so; the SDK checks it when present and warns when absent.
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(f.Throttle.Body))), 10))
		w.Header().Set("X-Amzn-Requestid", "fault-proxy-"+strconv.FormatInt(p.requests.Load(), 10))
		w.WriteHeader(f.Throttle.Status)
		_, _ = w.Write([]byte(f.Throttle.Body))
	default:
		p.forwarded.Add(1)
		p.rp.ServeHTTP(w, r)
	}
}

func (p *FaultProxy) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-p.closing:
	}
	return false
}

// resetConn closes the client's connection with a TCP RST (linger 0) instead of an answer.
func (p *FaultProxy) resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fault proxy: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
