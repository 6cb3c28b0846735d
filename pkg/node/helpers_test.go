package node

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// testClient builds a client for url with fast retries; edit adjusts the config.
func testClient(t testing.TB, url string, edit func(*Config)) (*Client, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.ConnectorVersion = "1.0.0-test"
	cfg.Retry.InitialBackoff = time.Millisecond
	cfg.Retry.MaxBackoff = 5 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c, reg
}

// closedURL is the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

func sampleCall() *accesslog.APICall {
	return &accesslog.APICall{
		RequestID: "c0ffee00-1111-2222-3333-444455556666",
		Method:    "GET",
		Host:      "abc123.execute-api.eu-west-1.amazonaws.com",
		Path:      "/prod/users/42",
		Status:    200,
		SourceIP:  "203.0.113.7",
		UserAgent: "curl/8.5.0",
	}
}

// metricValue sums the samples of a counter or gauge whose labels include want.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, want) {
				switch {
				case m.Counter != nil:
					sum += m.GetCounter().GetValue()
				case m.Gauge != nil:
					sum += m.GetGauge().GetValue()
				case m.Histogram != nil:
					sum += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// wireMsg is one message as it crossed the wire.
type wireMsg struct {
	Line    string   // request line
	Headers []string // "Name: value" lines, in wire order
}

// wireServer is a raw HTTP/1.1 server on loopback that records messages exactly as
// received and answers each with reply(n, msg), a full raw response (n counts from 0).
type wireServer struct {
	ln    net.Listener
	reply func(n int, m wireMsg) string
	wg    sync.WaitGroup

	mu    sync.Mutex
	msgs  []wireMsg
	conns map[net.Conn]struct{}
	count atomic.Int64
}

const ok200 = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

func newWireServer(t *testing.T, reply func(n int, m wireMsg) string) *wireServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if reply == nil {
		reply = func(int, wireMsg) string { return ok200 }
	}
	s := &wireServer{ln: ln, reply: reply, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *wireServer) url() string { return "http://" + s.ln.Addr().String() }

func (s *wireServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(conn)
	}
}

func (s *wireServer) serve(conn net.Conn) {
	defer s.wg.Done()
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		var m wireMsg
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		m.Line = strings.TrimRight(line, "\r\n")
		length := 0
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			h = strings.TrimRight(h, "\r\n")
			if h == "" {
				break
			}
			m.Headers = append(m.Headers, h)
			if k, v, _ := strings.Cut(h, ":"); strings.EqualFold(k, "Content-Length") {
				length = atoi(strings.TrimSpace(v))
			}
		}
		if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
		resp := s.reply(int(s.count.Add(1)-1), m)
		if resp == "" { // hang up without a reply
			return
		}
		if raw, ok := strings.CutSuffix(resp, hangUp); ok { // write, then hang up
			_, _ = io.WriteString(conn, raw)
			return
		}
		if _, err := io.WriteString(conn, resp); err != nil {
			return
		}
	}
}

// hangUp ends a wireServer reply that is written and then followed by closing the connection.
const hangUp = "\x00<hang up>"

// connCount is the number of connections the server accepted.
func (s *wireServer) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func (s *wireServer) messages() []wireMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wireMsg(nil), s.msgs...)
}

func (s *wireServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// recordingServer is an httptest server that records each message and lets
// handle decide the reply; n counts messages from 0.
type recordingServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, RequestID, ResponseCode string
	At                              time.Time
}

func newRecordingServer(t *testing.T, handle func(n int, w http.ResponseWriter, r *http.Request), setup ...func(*http.Server)) *recordingServer {
	t.Helper()
	rs := &recordingServer{}
	rs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		n := len(rs.reqs)
		rs.reqs = append(rs.reqs, recorded{
			Method: r.Method, RequestID: r.Header.Get("X-Wallarm-Request-Id"),
			ResponseCode: r.Header.Get("X-Wallarm-Response-Code"), At: time.Now(),
		})
		rs.mu.Unlock()
		handle(n, w, r)
	}))
	for _, f := range setup {
		f(rs.Config)
	}
	rs.Start()
	t.Cleanup(rs.Close)
	return rs
}

func (rs *recordingServer) recorded() []recorded {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]recorded(nil), rs.reqs...)
}

// kinds lists which message each recorded hit was: "req" or "resp".
func (rs *recordingServer) kinds() []string {
	var out []string
	for _, r := range rs.recorded() {
		if r.ResponseCode != "" {
			out = append(out, "resp")
		} else {
			out = append(out, "req")
		}
	}
	return out
}
