// Package capture is a recording endpoint for connector traffic: it accepts
// HTTP/1.1 messages from any connector (this one, or the official Lambda
// bundle run locally), writes each one verbatim as a JSON line (request line,
// headers in wire order, body as text or base64, timing, connection reuse),
// optionally forwards it unchanged to a real node and records the node's
// reply, and summarises the shape it saw (see Summary).
//
// It exists because Wallarm publishes no specification of the node's
// connector protocol: recording what a known-good connector sends is the
// cheapest way to settle the parts this connector only assumes.
package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wallarm/apigw-connector/pkg/node"
)

// Limits on what one message may hold: a recorder must not be a memory sink.
const (
	maxHeaderBytes = 64 << 10
	maxBodyBytes   = 16 << 20
	idleTimeout    = 2 * time.Minute
)

// Header is one header line as it was on the wire.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Body is a message body, as text when it is valid UTF-8, else base64.
type Body struct {
	Encoding string `json:"encoding"` // "empty", "text" or "base64"
	Data     string `json:"data,omitempty"`
	Bytes    int    `json:"bytes"`
	Kind     string `json:"kind"`              // empty, json, multipart, msgpack, form, text, binary
	Chunked  bool   `json:"chunked,omitempty"` // sent with Transfer-Encoding: chunked
}

// Reply is the upstream node's answer to a message.
type Reply struct {
	StatusLine string   `json:"status_line"`
	Status     int      `json:"status"`
	Headers    []Header `json:"headers"`
	Body       Body     `json:"body"`
	LatencyMS  float64  `json:"latency_ms"`
	Error      string   `json:"error,omitempty"`
}

// Message is one recorded message.
type Message struct {
	Time        time.Time `json:"time"`
	Conn        int       `json:"conn"`         // connection number, from 1
	SeqInConn   int       `json:"seq_in_conn"`  // 1 for the first message of a connection
	Remote      string    `json:"remote"`       // client address
	RequestLine string    `json:"request_line"` // verbatim
	Method      string    `json:"method"`
	Target      string    `json:"target"` // request target as sent
	Proto       string    `json:"proto"`
	Headers     []Header  `json:"headers"` // wire order, names as sent
	Body        Body      `json:"body"`
	// SincePrevMS is the time since the previous message on this connection
	// (0 for the first): shows keep-alive reuse and pacing.
	SincePrevMS float64 `json:"since_prev_ms"`
	Reply       *Reply  `json:"reply,omitempty"`
}

// Header returns the first value of the header named name (any case).
func (m *Message) Header(name string) (string, bool) {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Options configure a Server.
type Options struct {
	// Upstream is the real node's base URL (http://host:port); empty: answer
	// every message 200 with an empty body.
	Upstream string
	// DialTimeout and ReplyTimeout bound the upstream exchange.
	DialTimeout  time.Duration
	ReplyTimeout time.Duration
}

// Server records messages on a listener.
type Server struct {
	opts     Options
	upstream string // host:port
	out      io.Writer
	log      *slog.Logger

	mu       sync.Mutex // guards out, msgs, conns
	msgs     []Message
	nextConn int
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	ln       net.Listener
	closed   bool
	writeErr error
}

// New returns a Server writing JSON lines to out (nil: none; messages are
// still kept for the summary).
func New(opts Options, out io.Writer, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.ReplyTimeout == 0 {
		opts.ReplyTimeout = 60 * time.Second
	}
	s := &Server{opts: opts, out: out, log: log, conns: map[net.Conn]struct{}{}}
	if opts.Upstream != "" {
		u, err := url.Parse(opts.Upstream)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "") {
			return nil, fmt.Errorf("capture: --upstream %q: want http://host:port (TLS upstreams are not supported: run capture next to the node, or use a plain-HTTP listener)", node.RedactURL(opts.Upstream))
		}
		s.upstream = u.Host
		if u.Port() == "" {
			s.upstream = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("capture: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.nextConn++
		id := s.nextConn
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c, id)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, closes connections once ctx ends (or at once
// when they are idle) and waits for handlers.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		// Wake readers blocked on an idle connection; a message in
		// progress finishes within its own deadlines.
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeErr
}

// Messages returns what was recorded so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	if s.out == nil || s.writeErr != nil {
		return
	}
	b, err := json.Marshal(m)
	if err == nil {
		b = append(b, '\n')
		_, err = s.out.Write(b)
	}
	if err != nil {
		s.writeErr = fmt.Errorf("capture: write record: %w", err)
		s.log.Error("cannot write the capture file; messages are still summarised", "err", err)
	}
}

func (s *Server) handle(c net.Conn, id int) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 32<<10)
	var up net.Conn
	var upr *bufio.Reader
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	var prev time.Time
	for seq := 1; ; seq++ {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		if _, err := br.Peek(1); err != nil {
			return // closed, idle or shutting down
		}
		s.mu.Lock()
		closing := s.closed
		s.mu.Unlock()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		req, err := readMessage(br)
		if err != nil {
			s.log.Warn("unreadable message; closing the connection", "conn", id, "remote", c.RemoteAddr().String(), "err", err)
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		m := req.message(start, id, seq, c.RemoteAddr().String())
		if !prev.IsZero() {
			m.SincePrevMS = float64(start.Sub(prev).Microseconds()) / 1000
		}
		prev = start
		closeAfter := closing || req.wantsClose()
		var reply []byte
		if s.upstream == "" {
			reply = []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n")
			if closeAfter {
				reply = append(reply, "Connection: close\r\n"...)
			}
			reply = append(reply, "\r\n"...)
		} else {
			if up == nil {
				up, err = net.DialTimeout("tcp", s.upstream, s.opts.DialTimeout)
				if err == nil {
					upr = bufio.NewReaderSize(up, 32<<10)
				}
			}
			var rep *rawReply
			if err == nil {
				rep, err = s.exchange(up, upr, req.raw, m.Method)
			}
			if err != nil {
				m.Reply = &Reply{Error: err.Error()}
				if up != nil {
					up.Close()
					up = nil
				}
				reply = []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				closeAfter = true
			} else {
				m.Reply = rep.reply(time.Since(start))
				reply = rep.raw
				if rep.wantsClose() {
					up.Close()
					up = nil
					closeAfter = true // pass the node's Connection: close on
				}
			}
		}
		s.record(m)
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(reply); err != nil || closeAfter {
			return
		}
	}
}

func (s *Server) exchange(up net.Conn, upr *bufio.Reader, raw []byte, method string) (*rawReply, error) {
	up.SetDeadline(time.Now().Add(s.opts.ReplyTimeout))
	if _, err := up.Write(raw); err != nil {
		return nil, fmt.Errorf("forward to upstream: %w", err)
	}
	rep, err := readReply(upr, method == "HEAD")
	if err != nil {
		return nil, fmt.Errorf("read upstream reply: %w", err)
	}
	return rep, nil
}

// rawMessage is one HTTP message as read: its bytes verbatim and its parts.
type rawMessage struct {
	raw       []byte
	startLine string
	headers   []Header
	body      []byte
	chunked   bool
}

func (r *rawMessage) header(name string) (string, bool) {
	for _, h := range r.headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

func (r *rawMessage) wantsClose() bool {
	v, _ := r.header("Connection")
	return strings.EqualFold(strings.TrimSpace(v), "close") || strings.HasSuffix(r.startLine, "HTTP/1.0")
}

func (r *rawMessage) message(t time.Time, conn, seq int, remote string) Message {
	m := Message{Time: t.UTC(), Conn: conn, SeqInConn: seq, Remote: remote, RequestLine: r.startLine, Headers: r.headers}
	parts := strings.SplitN(r.startLine, " ", 3)
	if len(parts) == 3 {
		m.Method, m.Target, m.Proto = parts[0], parts[1], parts[2]
	}
	ct, _ := r.header("Content-Type")
	m.Body = makeBody(r.body, ct, r.chunked)
	return m
}

type rawReply struct{ rawMessage }

func (r *rawReply) reply(latency time.Duration) *Reply {
	rep := &Reply{StatusLine: r.startLine, Headers: r.headers, LatencyMS: float64(latency.Microseconds()) / 1000}
	if parts := strings.SplitN(r.startLine, " ", 3); len(parts) >= 2 {
		rep.Status, _ = strconv.Atoi(parts[1])
	}
	ct, _ := r.header("Content-Type")
	rep.Body = makeBody(r.body, ct, r.chunked)
	return rep
}

// readMessage reads one request, keeping its bytes verbatim.
func readMessage(br *bufio.Reader) (*rawMessage, error) {
	m := &rawMessage{}
	if err := readHead(br, m); err != nil {
		return nil, err
	}
	if err := readBody(br, m, true); err != nil {
		return nil, err
	}
	return m, nil
}

// readReply reads one response. A reply to HEAD, 1xx, 204 and 304 have no body.
func readReply(br *bufio.Reader, head bool) (*rawReply, error) {
	r := &rawReply{}
	if err := readHead(br, &r.rawMessage); err != nil {
		return nil, err
	}
	parts := strings.SplitN(r.startLine, " ", 3)
	if len(parts) < 2 || !strings.HasPrefix(parts[0], "HTTP/") {
		return nil, fmt.Errorf("not an HTTP reply: %q", truncate(r.startLine, 80))
	}
	code, _ := strconv.Atoi(parts[1])
	if head || code/100 == 1 || code == 204 || code == 304 {
		return r, nil
	}
	if err := readBody(br, &r.rawMessage, false); err != nil {
		return nil, err
	}
	return r, nil
}

func readHead(br *bufio.Reader, m *rawMessage) error {
	total := 0
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("header line too long")
			}
			return fmt.Errorf("read header: %w", err)
		}
		total += len(line)
		if total > maxHeaderBytes {
			return fmt.Errorf("header larger than %d bytes", maxHeaderBytes)
		}
		m.raw = append(m.raw, line...)
		text := strings.TrimRight(string(line), "\r\n")
		if first {
			if text == "" {
				continue // tolerated blank lines before a request
			}
			m.startLine = text
			first = false
			continue
		}
		if text == "" {
			return nil
		}
		name, value, ok := strings.Cut(text, ":")
		if !ok {
			return fmt.Errorf("malformed header line %q", truncate(text, 80))
		}
		m.headers = append(m.headers, Header{Name: name, Value: strings.TrimSpace(value)})
	}
}

func readBody(br *bufio.Reader, m *rawMessage, request bool) error {
	if te, ok := m.header("Transfer-Encoding"); ok && strings.Contains(strings.ToLower(te), "chunked") {
		m.chunked = true
		return readChunked(br, m)
	}
	cl, ok := m.header("Content-Length")
	if !ok {
		if request {
			return nil // no body
		}
		// A reply without a length runs to the end of the connection.
		b, err := io.ReadAll(io.LimitReader(br, maxBodyBytes+1))
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		if len(b) > maxBodyBytes {
			return fmt.Errorf("body larger than %d bytes", maxBodyBytes)
		}
		m.raw = append(m.raw, b...)
		m.body = b
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("bad Content-Length %q", cl)
	}
	if n > maxBodyBytes {
		return fmt.Errorf("body of %d bytes is larger than %d", n, maxBodyBytes)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	m.raw = append(m.raw, b...)
	m.body = b
	return nil
}

func readChunked(br *bufio.Reader, m *rawMessage) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read chunk size: %w", err)
		}
		m.raw = append(m.raw, line...)
		sz, _, _ := strings.Cut(strings.TrimSpace(string(line)), ";")
		n, err := strconv.ParseInt(sz, 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size %q", sz)
		}
		if int64(len(m.body))+n > maxBodyBytes {
			return fmt.Errorf("body larger than %d bytes", maxBodyBytes)
		}
		if n == 0 {
			// Trailers, then the blank line.
			for {
				t, err := br.ReadSlice('\n')
				if err != nil {
					return fmt.Errorf("read trailer: %w", err)
				}
				m.raw = append(m.raw, t...)
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		chunk := make([]byte, n+2) // data and its CRLF
		if _, err := io.ReadFull(br, chunk); err != nil {
			return fmt.Errorf("read chunk: %w", err)
		}
		m.raw = append(m.raw, chunk...)
		m.body = append(m.body, chunk[:n]...)
	}
}

func makeBody(b []byte, contentType string, chunked bool) Body {
	body := Body{Bytes: len(b), Kind: bodyKind(b, contentType), Chunked: chunked}
	switch {
	case len(b) == 0:
		body.Encoding = "empty"
	case utf8.Valid(b) && !bytes.ContainsRune(b, 0):
		body.Encoding, body.Data = "text", string(b)
	default:
		body.Encoding, body.Data = "base64", base64.StdEncoding.EncodeToString(b)
	}
	return body
}

// bodyKind names a body's encoding from its Content-Type, else its bytes.
func bodyKind(b []byte, contentType string) string {
	ct := strings.ToLower(contentType)
	switch {
	case len(b) == 0:
		return "empty"
	case strings.HasPrefix(ct, "multipart/"):
		return "multipart"
	case strings.Contains(ct, "msgpack"):
		return "msgpack"
	case strings.Contains(ct, "json"):
		return "json"
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		return "form"
	}
	t := bytes.TrimSpace(b)
	switch {
	case len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t):
		return "json"
	case bytes.HasPrefix(t, []byte("--")) && bytes.Contains(t, []byte("Content-Disposition")):
		return "multipart"
	case isMsgpackMap(b):
		return "msgpack"
	case utf8.Valid(b):
		return "text"
	}
	return "binary"
}

// isMsgpackMap: a fixmap, map16 or map32 header followed by a string key, the
// shape every msgpack-encoded message object takes.
func isMsgpackMap(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	i := 0
	switch c := b[0]; {
	case c >= 0x80 && c <= 0x8f:
		i = 1
	case c == 0xde:
		i = 3
	case c == 0xdf:
		i = 5
	default:
		return false
	}
	if i >= len(b) {
		return false
	}
	k := b[i]
	return (k >= 0xa0 && k <= 0xbf) || k == 0xd9 || k == 0xda || k == 0xdb
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
