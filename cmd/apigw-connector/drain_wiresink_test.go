package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// wireSink is the "wire" sink of BenchmarkDrain: the least HTTP/1.1 server that
// still reads every message (request line, headers, Content-Length body) and
// answers each with an empty 200, in order. Its replies for the messages one read
// brought leave in one write. Go's net/http costs about as much per message as the
// worker does on this machine, so against the noop sink the worker waits on the
// sink for most of a drain; against this one the worker is the busy side, and its
// CPU per call is what a fully loaded task pays.
type wireSink struct {
	ln    net.Listener
	sink  *callSink
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	quit  chan struct{} // closed by close: a gate that never opened does not hold it
}

func startWireSink(b testing.TB, s *callSink) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	w := &wireSink{ln: ln, sink: s, conns: map[net.Conn]struct{}{}, quit: make(chan struct{})}
	w.wg.Add(1)
	go w.accept()
	b.Cleanup(w.close)
	return "http://" + ln.Addr().String()
}

func (w *wireSink) accept() {
	defer w.wg.Done()
	for {
		c, err := w.ln.Accept()
		if err != nil {
			return
		}
		w.mu.Lock()
		w.conns[c] = struct{}{}
		w.mu.Unlock()
		w.wg.Add(1)
		go w.serve(c)
	}
}

func (w *wireSink) close() {
	close(w.quit)
	_ = w.ln.Close()
	w.mu.Lock()
	for c := range w.conns {
		_ = c.Close()
	}
	w.mu.Unlock()
	w.wg.Wait()
}

var wireReply = []byte(testkit.Reply200)

func (w *wireSink) serve(c net.Conn) {
	defer w.wg.Done()
	defer func() {
		w.mu.Lock()
		delete(w.conns, c)
		w.mu.Unlock()
		_ = c.Close()
	}()
	if w.sink.gate != nil {
		select {
		case <-w.sink.gate:
		case <-w.quit:
			return
		}
	}
	br := bufio.NewReaderSize(c, 64<<10)
	var out []byte
	for {
		id, err := readWireMessage(br)
		if err != nil {
			return
		}
		if id != "" {
			if logID := devnode.LogRequestID(id); logID != "" {
				id = logID
			}
			w.sink.record(id, time.Now())
		}
		out = append(out, wireReply...)
		if br.Buffered() == 0 { // nothing more in hand: answer what was read
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// readWireMessage reads one message and returns its request id when it is a
// response message (it carries the response code header), else "".
func readWireMessage(br *bufio.Reader) (string, error) {
	var id string
	var isResponse bool
	length := 0
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return "", err
		}
		line = bytes.TrimRight(line, "\r\n")
		if first {
			first = false
			continue // the request line
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return "", errors.New("header line without a colon")
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return "", errors.New("bad Content-Length")
			}
		case bytes.EqualFold(name, []byte(benchRequestIDHeader)):
			id = string(value)
		case bytes.EqualFold(name, []byte(benchResponseCodeHeader)):
			isResponse = true
		}
	}
	if _, err := br.Discard(length); err != nil {
		return "", err
	}
	if !isResponse {
		return "", nil
	}
	return id, nil
}

// The wire sink must read messages as a node does (pipelined, bodies skipped by
// Content-Length, header names in any case) or the drain benchmark counts wrong.
func TestWireSinkAnswersPipelinedMessagesInOrder(t *testing.T) {
	t.Parallel()
	s := &callSink{seen: map[string]time.Time{}}
	url := startWireSink(t, s)
	c, err := net.Dial("tcp", url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	msgs := "POST /a HTTP/1.1\r\nHost: x\r\nx-wallarm-request-id: r1-abc\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /a HTTP/1.1\r\nHost: x\r\nX-Wallarm-Request-Id: r1-abc\r\nX-Wallarm-Response-Code: 200\r\ncontent-length: 2\r\n\r\nok" +
		"HEAD /b HTTP/1.1\r\nHost: x\r\nX-Wallarm-Request-Id: r2-def\r\nX-Wallarm-Response-Code: 404\r\n\r\n"
	if _, err := c.Write([]byte(msgs)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	want := bytes.Repeat(wireReply, 3)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("replies: %v (got %q)", err, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("replies %q, want three empty 200s", got)
	}
	if n := s.distinct.Load(); n != 2 {
		t.Errorf("%d distinct calls recorded, want 2 (one per response message)", n)
	}
}
