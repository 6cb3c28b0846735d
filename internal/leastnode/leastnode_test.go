package leastnode

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func start(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// It must read messages as a node does (pipelined, bodies skipped by
// Content-Length, header names in any case) or a benchmark counts wrong.
func TestAnswersPipelinedMessagesInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ids []string
	s := start(t, Options{OnResponse: func(id string) {
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
	}})
	c := dial(t, s)
	msgs := "POST /a HTTP/1.1\r\nHost: x\r\nx-wallarm-request-id: r1-abc\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /a HTTP/1.1\r\nHost: x\r\nX-Wallarm-Request-Id: r1-abc\r\nX-Wallarm-Response-Code: 200\r\ncontent-length: 2\r\n\r\nok" +
		"HEAD /b HTTP/1.1\r\nHost: x\r\nX-Wallarm-Request-Id: r2-def\r\nx-wallarm-response-code: 404\r\n\r\n"
	if _, err := c.Write([]byte(msgs)); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat(Reply, 3)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("replies: %v (got %q)", err, got)
	}
	if string(got) != want {
		t.Fatalf("replies %q, want three empty 200s", got)
	}
	if req, resp := s.Counts(); req != 1 || resp != 2 {
		t.Errorf("counts: %d requests, %d responses; want 1 and 2", req, resp)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(ids, ",") != "r1-abc,r2-def" {
		t.Errorf("response ids %v, want r1-abc then r2-def", ids)
	}
}

func TestGateHoldsEveryReply(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	s := start(t, Options{Gate: gate})
	c := dial(t, s)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("a reply came before the gate opened: %d bytes, %v", n, err)
	}
	close(gate)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(Reply))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != Reply {
		t.Fatalf("after the gate: %q, %v", got, err)
	}
}

// A message it cannot read ends that connection, not the server.
func TestBrokenMessageEndsItsConnectionOnly(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	bad := dial(t, s)
	if _, err := bad.Write([]byte("GET / HTTP/1.1\r\nno colon here\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(bad); len(b) != 0 || err != nil {
		t.Fatalf("broken message: got %q, %v; want the connection closed unanswered", b, err)
	}
	good := dial(t, s)
	if _, err := good.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(Reply))
	if _, err := io.ReadFull(good, got); err != nil || !bytes.Equal(got, []byte(Reply)) {
		t.Fatalf("next connection: %q, %v", got, err)
	}
}

// With a latency each message is answered that long after it was read, one
// after the other on a connection: two pipelined messages take two latencies.
func TestLatencyHoldsEachReplyInTurn(t *testing.T) {
	t.Parallel()
	const lat = 50 * time.Millisecond
	s := start(t, Options{Latency: lat})
	c := dial(t, s)
	start := time.Now()
	if _, err := c.Write([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		got := make([]byte, len(Reply))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != Reply {
			t.Fatalf("reply %d: %q, %v", i, got, err)
		}
		if took := time.Since(start); took < time.Duration(i)*lat {
			t.Fatalf("reply %d after %v, before %d latencies", i, took, i)
		}
	}
}
