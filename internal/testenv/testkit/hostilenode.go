package testkit

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Raw replies for HostileNode.
const (
	Reply200 = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	Reply503 = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
)

// HostileOptions say how a HostileNode misbehaves.
type HostileOptions struct {
	// Banner is written as soon as a connection is accepted, before any request
	// (an SSH or SMTP greeting: what a wrong port answers).
	Banner string
	// Reply gives the raw bytes answering request n (counted from 0 over all
	// connections), in parts written Gap apart (in one write when Gap is 0):
	// more than one reply in the parts is an unsolicited extra reply. nil
	// answers Reply200.
	Reply func(n int) []string
	// Gap is the pause between the parts of a reply.
	Gap time.Duration
	// CloseAfter closes each connection after that many replies, without saying
	// so (no Connection: close); 0 keeps connections open.
	CloseAfter int
	// NoRead skips reading requests: after the banner, Reply(n) is written once
	// per connection (garbage servers that do not speak HTTP at all).
	NoRead bool
}

// HostileNode is a raw TCP server on 127.0.0.1 standing in for a node that
// breaks HTTP in the ways a client must survive: extra replies, silent closes,
// non-HTTP answers. Closed by t.Cleanup.
type HostileNode struct {
	ln   net.Listener
	opts HostileOptions
	wg   sync.WaitGroup
	n    atomic.Int64 // requests read
	acc  atomic.Int64 // connections accepted

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	heads []string // of the requests read, in order
}

// NewHostileNode starts a hostile node.
func NewHostileNode(t testing.TB, o HostileOptions) *HostileNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.Reply == nil {
		o.Reply = func(int) []string { return []string{Reply200} }
	}
	h := &HostileNode{ln: ln, opts: o, conns: map[net.Conn]struct{}{}}
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.Close)
	return h
}

// URL is the node's http URL.
func (h *HostileNode) URL() string { return "http://" + h.ln.Addr().String() }

// Addr is the node's host:port.
func (h *HostileNode) Addr() string { return h.ln.Addr().String() }

// Requests is the number of requests read so far.
func (h *HostileNode) Requests() int { return int(h.n.Load()) }

// Heads returns the head (request line and headers) of each request read, in order.
func (h *HostileNode) Heads() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.heads...)
}

// Conns is the number of connections accepted so far.
func (h *HostileNode) Conns() int { return int(h.acc.Load()) }

// Close stops the server and closes its connections.
func (h *HostileNode) Close() {
	h.ln.Close()
	h.mu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *HostileNode) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.acc.Add(1)
		h.mu.Lock()
		h.conns[c] = struct{}{}
		h.mu.Unlock()
		h.wg.Add(1)
		go h.serve(c)
	}
}

func (h *HostileNode) serve(c net.Conn) {
	defer h.wg.Done()
	defer func() {
		c.Close()
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	}()
	if h.opts.Banner != "" {
		if _, err := io.WriteString(c, h.opts.Banner); err != nil {
			return
		}
	}
	if h.opts.NoRead {
		h.write(c, int(h.n.Add(1)-1))
		_, _ = io.Copy(io.Discard, c) // hold the connection until the client leaves
		return
	}
	br := bufio.NewReader(c)
	for served := 0; h.opts.CloseAfter == 0 || served < h.opts.CloseAfter; served++ {
		head, ok := readRequest(br)
		if !ok {
			return
		}
		h.mu.Lock()
		h.heads = append(h.heads, head)
		n := int(h.n.Add(1) - 1) // under mu: heads[n] is request n
		h.mu.Unlock()
		if !h.write(c, n) {
			return
		}
	}
}

func (h *HostileNode) write(c net.Conn, n int) bool {
	parts := h.opts.Reply(n)
	if h.opts.Gap == 0 { // one write: the parts reach the client together
		parts = []string{strings.Join(parts, "")}
	}
	for i, part := range parts {
		if i > 0 && h.opts.Gap > 0 {
			time.Sleep(h.opts.Gap)
		}
		if _, err := io.WriteString(c, part); err != nil {
			return false
		}
	}
	return true
}

// readRequest consumes one request: its head, returned, and a Content-Length body.
func readRequest(br *bufio.Reader) (string, bool) {
	var head strings.Builder
	first, err := br.ReadString('\n')
	if err != nil {
		return "", false
	}
	head.WriteString(first)
	length := int64(0)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", false
		}
		head.WriteString(line)
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	_, err = io.CopyN(io.Discard, br, length)
	return head.String(), err == nil
}
