// Package leastnode is the least HTTP/1.1 node a connector can be measured
// against: it reads every message whole (request line, headers, a
// Content-Length body) and answers each with an empty 200, in order. The
// replies to the messages one read brought leave in one write. It checks
// nothing of the contract (devnode does): it costs the machine as little as a
// server can, so that a benchmark on one machine measures the connector, not
// a node stand-in sharing its cores. The Kinesis drain benchmark and
// `make bench-cost` use it.
package leastnode

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wallarm/apigw-connector/internal/delay"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

// Reply is the answer to every message.
const Reply = testkit.Reply200

// Header names read from each message (any case), as the connector's default
// raw profile sends them.
const (
	RequestIDHeader    = "X-Wallarm-Request-Id"
	ResponseCodeHeader = "X-Wallarm-Response-Code"
)

// Options tune a Server; the zero value answers at once and records nothing.
type Options struct {
	// Gate, when not nil, holds every connection's first read until it is
	// closed: nothing is answered before.
	Gate <-chan struct{}
	// OnResponse is called with the request id of each response message (a
	// message with ResponseCodeHeader), from the connection's goroutine.
	OnResponse func(id string)
	// Latency, when positive, holds each reply that long after its message was
	// read, and a connection's messages are answered one after the other (as
	// Go's net/http, and so devnode, does): a latency-bound benchmark's node
	// that leaves the machine's cores to the connector.
	Latency time.Duration
}

// Server is a running least node.
type Server struct {
	ln   net.Listener
	opts Options
	quit chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	requests, responses atomic.Int64
	delay               delay.Delayer // for Latency
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves until Close.
func Start(addr string, o Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, opts: o, quit: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	if o.Latency > 0 {
		s.delay = delay.New()
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL is the node's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Counts returns the request and response messages read so far.
func (s *Server) Counts() (requests, responses int64) {
	return s.requests.Load(), s.responses.Load()
}

// Close stops listening, drops every connection and waits for their goroutines.
func (s *Server) Close() {
	close(s.quit)
	if s.delay != nil {
		s.delay.Close()
	}
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

var reply = []byte(Reply)

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	if s.opts.Gate != nil {
		select {
		case <-s.opts.Gate:
		case <-s.quit:
			return
		}
	}
	br := bufio.NewReaderSize(c, 64<<10)
	var out []byte
	for {
		id, isResponse, err := readMessage(br)
		if err != nil {
			return
		}
		if isResponse {
			s.responses.Add(1)
			if s.opts.OnResponse != nil {
				s.opts.OnResponse(id)
			}
		} else {
			s.requests.Add(1)
		}
		out = append(out, reply...)
		if s.delay != nil && !s.delay.Wait(s.opts.Latency, s.quit, nil) {
			return
		}
		if s.delay != nil || br.Buffered() == 0 { // nothing more in hand: answer what was read
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

var (
	errNoColon   = errors.New("header line without a colon")
	errBadLength = errors.New("bad Content-Length")
)

// readMessage reads one message: its request id, whether it is a response
// message (it carries ResponseCodeHeader).
func readMessage(br *bufio.Reader) (id string, isResponse bool, err error) {
	length := 0
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return "", false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if first {
			continue // the request line
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return "", false, errNoColon
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return "", false, errBadLength
			}
		case bytes.EqualFold(name, []byte(RequestIDHeader)):
			id = string(value)
		case bytes.EqualFold(name, []byte(ResponseCodeHeader)):
			isResponse = true
		}
	}
	if _, err := br.Discard(length); err != nil {
		return "", false, err
	}
	return id, isResponse, nil
}
