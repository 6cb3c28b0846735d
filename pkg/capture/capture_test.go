package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/internal/testenv/devnodetest"
	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/node"
)

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCapture runs a Server on a free loopback port.
func startCapture(t *testing.T, opts Options) (*Server, string, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	s, err := New(opts, out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String(), out
}

func calls(n int) []*accesslog.APICall {
	var out []*accesslog.APICall
	for i := range n {
		out = append(out, &accesslog.APICall{
			RequestID: fmt.Sprintf("req-%04d", i),
			NodeID:    fmt.Sprintf("req-%04d-%012x", i, i*7919),
			Method:    []string{"GET", "POST", "DELETE"}[i%3],
			Host:      "abc123.execute-api.eu-west-1.amazonaws.com",
			Path:      fmt.Sprintf([]string{"/prod/users/%d", "/v2/orders/%d", "/health%d"}[i%3], i),
			Status:    []int{200, 201, 404}[i%3],
			SourceIP:  "203.0.113.7",
			UserAgent: "curl/8.5.0",
		})
	}
	return out
}

func deliver(t *testing.T, url string, edit func(*node.Config), cs []*accesslog.APICall) {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.URL = url
	cfg.Concurrency = 4
	cfg.ConnectorVersion = "9.9.9"
	cfg.Retry.InitialBackoff = time.Millisecond
	cfg.Retry.MaxBackoff = 10 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	c, err := node.New(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, call := range cs {
		if err := c.Deliver(ctx, call); err != nil {
			t.Fatalf("Deliver %s: %v", call.RequestID, err)
		}
	}
}

// The summary's settings, fed back to the connector, reproduce the captured
// shape: capture a connector with non-default settings, derive the settings
// from the summary, send again with them, and compare the shapes.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	custom := func(c *node.Config) {
		c.ResponseMethod = "PUT"
		c.PathPrefix = "/gw"
		c.ConnectorType = "my-connector"
		c.Headers.RequestID = "X-Trace-Id"
		c.Headers.ResponseCode = "X-Upstream-Status"
		c.Headers.ConnectorType = "X-Conn-Type"
		c.Headers.ConnectorVersion = "X-Conn-Version"
		c.Headers.ForwardedHost = "X-Orig-Host"
		c.Headers.ForwardedFor = "X-Client-Ip"
	}
	s1, addr1, out := startCapture(t, Options{})
	deliver(t, "http://"+addr1, custom, calls(9))
	msgs := s1.Messages()
	if len(msgs) != 18 {
		t.Fatalf("recorded %d messages, want 18 (two per call)", len(msgs))
	}
	sum := Summarize(msgs, addr1)
	want := map[string]string{
		"node.response_method":           "PUT",
		"node.path_prefix":               "/gw",
		"node.connector_type":            "my-connector",
		"node.connector_version":         "9.9.9",
		"node.headers.request_id":        "X-Trace-Id",
		"node.headers.response_code":     "X-Upstream-Status",
		"node.headers.connector_type":    "X-Conn-Type",
		"node.headers.connector_version": "X-Conn-Version",
		"node.headers.forwarded_host":    "X-Orig-Host",
		"node.headers.forwarded_for":     "X-Client-Ip",
		"node.host_mode":                 "original",
		"node.profile":                   "raw",
	}
	for k, v := range want {
		if sum.Settings[k] != v {
			t.Errorf("suggested %s = %q, want %q (all: %v)", k, sum.Settings[k], v, sum.Settings)
		}
	}
	if sum.Pairing.Pairs != 9 || sum.Pairing.Unpaired != 0 {
		t.Errorf("pairing: %+v, want 9 pairs", sum.Pairing)
	}
	// Every line of the recording is one JSON message.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 18 {
		t.Fatalf("recording has %d lines, want 18", len(lines))
	}
	var m Message
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil || m.RequestLine == "" {
		t.Fatalf("first line %q: %v", lines[0], err)
	}

	// Feed the suggestions back: the second capture has the same shape.
	s2, addr2, _ := startCapture(t, Options{})
	deliver(t, "http://"+addr2, func(c *node.Config) {
		applySettings(t, c, sum.Settings)
	}, calls(9))
	sum2 := Summarize(s2.Messages(), addr2)
	if fmt.Sprint(shapeOf(sum)) != fmt.Sprint(shapeOf(sum2)) {
		t.Errorf("shapes differ:\n first  %v\n second %v", shapeOf(sum), shapeOf(sum2))
	}
}

// shapeOf is what must match between two captures.
func shapeOf(s Summary) []string {
	out := []string{fmt.Sprint(s.Methods), s.Targets.Style, s.Targets.Prefix, fmt.Sprint(s.BodyKinds), fmt.Sprint(s.Pairing.OnlySecond), s.Pairing.Header}
	for _, h := range s.Headers {
		out = append(out, h.Name+"="+h.Pattern+"/"+h.Constant)
	}
	return out
}

func applySettings(t *testing.T, c *node.Config, set map[string]string) {
	t.Helper()
	for k, v := range set {
		switch k {
		case "node.profile":
			c.Profile = v
		case "node.response_method":
			c.ResponseMethod = v
		case "node.path_prefix":
			c.PathPrefix = v
		case "node.connector_type":
			c.ConnectorType = v
		case "node.connector_version":
			c.ConnectorVersion = v
		case "node.host_mode":
			c.HostMode = v
		case "node.request_id_format":
			c.RequestIDFormat = v
		case "node.headers.request_id":
			c.Headers.RequestID = v
		case "node.headers.response_code":
			c.Headers.ResponseCode = v
		case "node.headers.connector_type":
			c.Headers.ConnectorType = v
		case "node.headers.connector_version":
			c.Headers.ConnectorVersion = v
		case "node.headers.forwarded_host":
			c.Headers.ForwardedHost = v
		case "node.headers.forwarded_for":
			c.Headers.ForwardedFor = v
		default:
			t.Fatalf("summary suggested %s, which the test cannot apply", k)
		}
	}
}

// Hand-written messages of shapes this connector does not send are recorded
// verbatim and named: multipart to the root path, msgpack, chunked.
func TestForeignShapes(t *testing.T) {
	t.Parallel()
	s, addr, _ := startCapture(t, Options{})
	multipart := "--XyZ\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\nGET /pets HTTP/1.1\r\n\r\n--XyZ--\r\n"
	msgpack := []byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't', 0xa2, 'i', 'd', 0xcd, 0x01, 0x00}
	raw := "POST / HTTP/1.1\r\nHost: node\r\nx-wallarm-request-id: 0a1b2c3d4e5f6789\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(multipart), multipart) +
		"POST /msg HTTP/1.1\r\nHost: node\r\nContent-Type: application/msgpack\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(msgpack), msgpack) +
		"PUT /chunks HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("reply %d: %q, %v", i, line, err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reply %d headers: %v", i, err)
			}
			if l == "\r\n" {
				break
			}
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection not closed after Connection: close: %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 3 {
		t.Fatalf("recorded %d messages, want 3", len(msgs))
	}
	if got := msgs[0].Headers[1]; got.Name != "x-wallarm-request-id" || got.Value != "0a1b2c3d4e5f6789" {
		t.Errorf("header kept as sent: got %+v", got)
	}
	if msgs[0].Body.Kind != "multipart" || msgs[0].Body.Encoding != "text" || msgs[0].Body.Data != multipart {
		t.Errorf("multipart body: %+v", msgs[0].Body)
	}
	if msgs[1].Body.Kind != "msgpack" || msgs[1].Body.Encoding != "base64" || msgs[1].Body.Data != base64.StdEncoding.EncodeToString(msgpack) {
		t.Errorf("msgpack body: %+v", msgs[1].Body)
	}
	if !msgs[2].Body.Chunked || msgs[2].Body.Data != "hello world" {
		t.Errorf("chunked body: %+v", msgs[2].Body)
	}
	for i, m := range msgs {
		if m.Conn != 1 || m.SeqInConn != i+1 {
			t.Errorf("message %d: conn %d seq %d, want 1/%d (one reused connection)", i, m.Conn, m.SeqInConn, i+1)
		}
	}
	sum := Summarize(msgs, addr)
	if p, ok := sum.Settings["node.profile"]; ok {
		t.Errorf("suggested node.profile %q for a shape no profile sends", p)
	}
	var b strings.Builder
	if err := sum.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"multipart 1", "msgpack 1", "carry a multipart body", "carry a msgpack body", "no node.profile reproduces this shape (built in: raw)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// With --upstream every message reaches the node unchanged, the node's reply
// is recorded and passed back, and the node builds its inventory as usual.
func TestUpstreamDevnode(t *testing.T) {
	t.Parallel()
	dn, nodeURL := devnodetest.Start(t, devnode.DefaultOptions())
	s, addr, _ := startCapture(t, Options{Upstream: nodeURL})
	cs := calls(6)
	deliver(t, "http://"+addr, nil, cs)
	msgs := s.Messages()
	if len(msgs) != 12 {
		t.Fatalf("recorded %d messages, want 12", len(msgs))
	}
	for _, m := range msgs {
		if m.Reply == nil || m.Reply.Status != 200 {
			t.Fatalf("message %q: reply %+v, want the node's 200", m.RequestLine, m.Reply)
		}
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.NodeID)
	}
	if missing, repeated := dn.CheckDelivered(ids); len(missing)+len(repeated) > 0 {
		t.Errorf("node: missing %v, repeated %v", missing, repeated)
	}
	if st := Summarize(msgs, addr); st.Replies[200] != 12 {
		t.Errorf("summary replies %v, want 200: 12", st.Replies)
	}
}

// An upstream that does not answer HTTP is reported per message and the
// client gets a 502, never a made-up success.
func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	s, addr, _ := startCapture(t, Options{Upstream: "http://" + closed, DialTimeout: time.Second})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 502") {
		t.Errorf("reply %q, want 502", line)
	}
	if m := s.Messages(); len(m) != 1 || m[0].Reply == nil || m[0].Reply.Error == "" {
		t.Errorf("recorded %+v, want one message with the upstream error", m)
	}
}

func TestNewRejectsTLSUpstreamWithoutLeakingCredentials(t *testing.T) {
	t.Parallel()
	_, err := New(Options{Upstream: "https://user:S3CR3T@node:443"}, nil, nil)
	if err == nil || strings.Contains(err.Error(), "S3CR3T") {
		t.Fatalf("err = %v, want a refusal without the password", err)
	}
}

func TestValuePattern(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"":                                     "empty",
		"200":                                  "status",
		"0a1b2c3d4e5f6789":                     "hex",
		"c0ffee00-1111-2222-3333-444455556666": "uuid",
		"203.0.113.7":                          "ip",
		"2001:db8::1":                          "ip",
		"1.2.3":                                "version",
		"api.example.com":                      "host",
		"apigw-connector":                      "token",
		"curl/8.5.0 (x86)":                     "text",
		"12345678901":                          "decimal",
	} {
		if got := valuePattern(v); got != want {
			t.Errorf("valuePattern(%q) = %s, want %s", v, got, want)
		}
	}
}

// The command records to --out, prints the summary on exit and writes it to --summary.
func TestRunCommand(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	out, sumFile := dir+"/c.jsonl", dir+"/summary.txt"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- RunCommand(ctx, []string{"--listen", addr, "--out", out, "--summary", sumFile}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("capture did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	deliver(t, "http://"+addr, nil, calls(3))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunCommand: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunCommand did not stop")
	}
	rec, err := os.ReadFile(out)
	if err != nil || strings.Count(string(rec), "\n") != 6 {
		t.Fatalf("recording: %d lines, %v", strings.Count(string(rec), "\n"), err)
	}
	sum, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"messages: 6", "pairing: 3 pairs by X-Wallarm-Request-Id", "response_method: POST", "request_id: X-Wallarm-Request-Id"} {
		if !strings.Contains(string(sum), want) || !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

// Hex ids on the wire are recognised and mapped onto node.request_id_format.
func TestSuggestsHexIDs(t *testing.T) {
	t.Parallel()
	s, addr, _ := startCapture(t, Options{})
	deliver(t, "http://"+addr, func(c *node.Config) { c.RequestIDFormat = node.RequestIDHex }, calls(4))
	sum := Summarize(s.Messages(), addr)
	if sum.Settings["node.request_id_format"] != "hex" || sum.Pairing.Pairs != 4 {
		t.Errorf("settings %v, pairing %+v: want request_id_format hex and 4 pairs", sum.Settings, sum.Pairing)
	}
}
