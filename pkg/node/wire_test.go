package node

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The client's own HTTP/1.1 transport: reply framing, connection reuse and the
// reasons of malformed replies (the same as with net/http's transport). The first message gets the case's reply, every
// other one an empty 200.
func TestReplyFramingAndReuse(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", 70000)
	chunk := func(s string) string { return strings.ToLower(strconvHex(len(s))) + "\r\n" + s + "\r\n" }
	tests := []struct {
		name      string
		method    string // of the request message; GET by default
		first     string
		reason    string // retries_total reason of the first attempt; "" = accepted at once
		wantConns int
	}{
		{"chunked", "", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("hello") + chunk("world") + "0\r\n\r\n", "", 1},
		{"chunked with extension and trailer", "", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", "", 1},
		{"Connection: close", "", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "", 2},
		{"Connection: keep-alive, close", "", "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n", "", 2},
		{"HTTP/1.0", "", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "", 2},
		{"HTTP/1.0 keep-alive", "", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", "", 1},
		{"small body drained", "", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 1000), "", 1},
		{"oversize body", "", "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + big, "", 2},
		{"oversize chunked body", "", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(big) + "0\r\n\r\n", "", 2},
		{"body until close", "", "HTTP/1.1 200 OK\r\n\r\nsome body" + hangUp, "", 2},
		{"HEAD reply has no body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "", 1},
		{"204 has no body", "", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "", 1},
		{"100 Continue skipped", "", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "", 1},
		{"long header line", "", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("h", 10000) + "\r\nContent-Length: 0\r\n\r\n", "", 1},
		{"LF line ends", "", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "", 1},
		{"503 chunked body", "", "HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("busy") + "0\r\n\r\n", "http_503", 1},

		{"malformed status line", "", "HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n", "protocol", 2},
		{"status line without code", "", "garbage\r\n\r\n", "not_http", 2},
		{"bad version", "", "HTTZ/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "not_http", 2},
		{"header line without colon", "", "HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n", "protocol", 2},
		{"bad Content-Length", "", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "connection", 2},
		{"conflicting Content-Length", "", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 3\r\n\r\nabc", "connection", 2},
		{"unsupported transfer encoding", "", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "connection", 2},
		{"headers too large", "", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 70) + "\r\n", "connection", 2},
		{"cut in status line", "", "HTTP/1.1 2" + hangUp, "protocol", 2},
		{"cut mid header line", "", "HTTP/1.1 200 OK\r\nContent-Le" + hangUp, "protocol", 2},
		{"cut before end of headers", "", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + hangUp, "connection_reset", 2},
		{"no reply at all", "", hangUp, "connection_reset", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newWireServer(t, func(n int, _ wireMsg) string {
				if n == 0 {
					return tt.first
				}
				return ok200
			})
			c, reg := testClient(t, srv.url(), func(c *Config) { c.ReplyTimeout = 2 * time.Second })
			call := sampleCall()
			if tt.method != "" {
				call.Method = tt.method
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Deliver(ctx, call); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			wantMsgs, wantRetries := 2, 0.0
			if tt.reason != "" {
				wantMsgs, wantRetries = 3, 1
				if v := metricValue(t, reg, "apigw_connector_node_retries_total", map[string]string{"reason": tt.reason}); v != 1 {
					t.Errorf("retries_total{reason=%s} = %v, want 1 (all: %v)", tt.reason, v,
						metricValue(t, reg, "apigw_connector_node_retries_total", nil))
				}
			}
			if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != wantRetries {
				t.Errorf("retries_total = %v, want %v", v, wantRetries)
			}
			if n := len(srv.messages()); n != wantMsgs {
				t.Errorf("server saw %d messages, want %d", n, wantMsgs)
			}
			if n := srv.connCount(); n != tt.wantConns {
				t.Errorf("server saw %d connections, want %d", n, tt.wantConns)
			}
		})
	}
}

func strconvHex(n int) string {
	const hex = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 16 {
		b = append([]byte{hex[n%16]}, b...)
	}
	return string(b)
}

// A rejection's snippet is taken from a chunked body too, and the connection is kept.
func TestRejectionSnippetFromChunkedBody(t *testing.T) {
	t.Parallel()
	srv := newWireServer(t, func(n int, _ wireMsg) string {
		return "HTTP/1.1 415 Unsupported\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhost \r\n3;e=1\r\nnot\r\n8\r\n allowed\r\n0\r\n\r\n"
	})
	c, _ := testClient(t, srv.url(), nil)
	for range 2 {
		err := c.Deliver(context.Background(), sampleCall())
		var re *RejectedError
		if !errors.As(err, &re) || re.Code != 415 || re.Reason != "host not allowed" {
			t.Fatalf("Deliver = %v, want a 415 rejection with the body as reason", err)
		}
	}
	if n := srv.connCount(); n != 1 {
		t.Errorf("server saw %d connections, want 1 (reused)", n)
	}
}

// The node closed a keep-alive connection after its reply: the next message fails
// on it before any reply byte, and is resent at once on a new connection, without
// a retry or an error counted (as net/http did).
func TestStaleKeepAliveConnectionResentOnce(t *testing.T) {
	t.Parallel()
	srv := newWireServer(t, func(n int, _ wireMsg) string {
		if n == 0 {
			return ok200 + hangUp
		}
		return ok200
	})
	c, reg := testClient(t, srv.url(), nil)
	if err := c.Deliver(context.Background(), sampleCall()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if n := len(srv.messages()); n != 2 {
		t.Errorf("server saw %d messages, want 2", n)
	}
	if n := srv.connCount(); n != 2 {
		t.Errorf("server saw %d connections, want 2", n)
	}
	for _, name := range []string{"apigw_connector_node_retries_total", "apigw_connector_node_errors_total"} {
		if v := metricValue(t, reg, name, nil); v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
}

// A message that got no reply on a new connection is not resent by the transport:
// the retry is the client's, counted and backed off.
func TestNoReplyOnNewConnectionIsARetry(t *testing.T) {
	t.Parallel()
	var first atomic.Bool
	srv := newWireServer(t, func(n int, _ wireMsg) string {
		if first.CompareAndSwap(false, true) {
			return hangUp
		}
		return ok200
	})
	c, reg := testClient(t, srv.url(), nil)
	if err := c.Deliver(context.Background(), sampleCall()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if v := metricValue(t, reg, "apigw_connector_node_errors_total", map[string]string{"reason": "connection_reset"}); v != 1 {
		t.Errorf("errors_total{connection_reset} = %v, want 1", v)
	}
}

// Over TLS the connection is kept alive across messages and calls.
func TestTLSKeepAlive(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := writeFile(t, t.TempDir(), "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	// httptest's certificate names example.com and 127.0.0.1: the default server
	// name (the URL's host) must verify.
	c, _ := testClient(t, srv.URL, func(c *Config) { c.TLS.CAFile = caFile })
	for range 5 {
		if err := c.Deliver(context.Background(), sampleCall()); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("server saw %d TLS connections, want 1", n)
	}
	if err := c.Probe(context.Background()); err != nil {
		t.Errorf("Probe over TLS: %v", err)
	}
}

// A node that accepts TCP but never completes the TLS handshake costs reply_timeout
// per attempt, counted as a timeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; conn.Close() }()
		}
	}()
	c, reg := testClient(t, "https://"+ln.Addr().String(), func(c *Config) { c.ReplyTimeout = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Deliver(ctx, sampleCall()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver = %v, want the context's deadline", err)
	}
	if v := metricValue(t, reg, "apigw_connector_node_errors_total", map[string]string{"reason": "timeout"}); v < 1 {
		t.Errorf("errors_total{timeout} = %v, want >= 1", v)
	}
}

// A caller waiting for a connection of a full pool leaves when its context ends.
func TestWaitForPooledConnectionHonoursContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			<-release
		}
	})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	c, _ := testClient(t, srv.URL, func(c *Config) { c.MaxConnections = 1 })
	first := make(chan error, 1)
	go func() { first <- c.Deliver(context.Background(), sampleCall()) }()
	for len(srv.recorded()) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	call := sampleCall()
	call.RequestID = "second"
	start := time.Now()
	if err := c.Deliver(ctx, call); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Deliver returned after %v", d)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first Deliver: %v", err)
	}
}

// The wire shape of the probe: GET of the health path, Host of the node, the static
// headers, no User-Agent and no length.
func TestProbeWireShape(t *testing.T) {
	t.Parallel()
	srv := newWireServer(t, nil)
	c, _ := testClient(t, srv.url()+"/base/", func(c *Config) {
		c.ExtraHeaders = map[string]string{"X-App": " 42 "}
	})
	if err := c.Probe(context.Background()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	if got, want := msgs[0].Line, "GET /base/wallarm-external-health HTTP/1.1"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	want := []string{
		"Host: " + strings.TrimPrefix(srv.url(), "http://"),
		"X-App: 42",
		"X-Wallarm-Connector-Type: apigw-connector",
		"X-Wallarm-Connector-Version: 1.0.0-test",
	}
	if got := strings.Join(msgs[0].Headers, "|"); got != strings.Join(want, "|") {
		t.Errorf("headers\n got %s\nwant %s", got, strings.Join(want, "|"))
	}
}

// The request message's header order is net/http's: Host, User-Agent,
// Content-Length, then the others sorted by name.
func TestMessageHeaderOrder(t *testing.T) {
	t.Parallel()
	srv := newWireServer(t, nil)
	c, _ := testClient(t, srv.url(), nil)
	call := sampleCall()
	call.Method = "POST"
	call.UserAgent = " ua/1 "
	if err := c.Deliver(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	host := "Host: " + call.Host
	want := []string{
		host + "|User-Agent: ua/1|Content-Length: 0|X-Wallarm-Connector-Type: apigw-connector|X-Wallarm-Connector-Version: 1.0.0-test|X-Wallarm-Forwarded-For: 203.0.113.7|X-Wallarm-Forwarded-Host: " + call.Host + "|X-Wallarm-Request-Id: " + call.RequestID,
		host + "|Content-Length: 0|X-Wallarm-Connector-Type: apigw-connector|X-Wallarm-Connector-Version: 1.0.0-test|X-Wallarm-Forwarded-For: 203.0.113.7|X-Wallarm-Forwarded-Host: " + call.Host + "|X-Wallarm-Request-Id: " + call.RequestID + "|X-Wallarm-Response-Code: 200",
	}
	for i, m := range msgs {
		if got := strings.Join(m.Headers, "|"); got != want[i] {
			t.Errorf("message %d headers\n got %s\nwant %s", i, got, want[i])
		}
	}
}
