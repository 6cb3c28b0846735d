package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// dialNode opens a connection to the node: TCP within connect_timeout (the dialer's),
// then, for https, the TLS handshake within reply_timeout.
func (c *Client) dialNode(ctx context.Context) (net.Conn, error) {
	nc, err := c.dialer.DialContext(ctx, "tcp", c.dialAddr)
	if err != nil {
		return nil, err
	}
	nc = newSysConn(nc)
	if c.tlsCfg == nil {
		return nc, nil
	}
	tc := tls.Client(nc, c.tlsCfg)
	_ = nc.SetDeadline(time.Now().Add(c.cfg.ReplyTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return tc, nil
}

// exchange sends one message (m as kind; kindProbe for the health check) and waits
// for the node's reply. A message that got no reply because the node closed a
// connection it had kept (after earlier replies, or with earlier messages still
// unanswered) is sent once more at once, without backoff, as net/http does for a
// replayable request; on a new connection that failed it is the caller's retry.
func (c *Client) exchange(ctx context.Context, m *message, kind string) (reply, error) {
	method := c.probeMethod
	switch kind {
	case kindRequest:
		method = m.method
	case kindResponse:
		method = c.cfg.ResponseMethod
	}
	build := func(b []byte) []byte { return c.appendMessage(b, m, kind) }
	for resent := false; ; {
		pc, now, err := c.pool.get(ctx)
		if err != nil {
			return reply{}, err
		}
		x := pendingPool.Get().(*pending)
		x.method = method
		reused := pc.send(x, now, build)
		select {
		case <-x.done:
		case <-ctx.Done():
			// The reply is still read (the connection stays in step) and
			// dropped; x is left to the collector, its done may yet fire.
			return reply{}, ctx.Err()
		}
		r, err, noReply := x.r, x.err, x.noReply
		*x = pending{done: x.done}
		pendingPool.Put(x)
		if err == nil {
			return r, nil
		}
		if errors.Is(err, errConnGone) {
			continue // never written
		}
		if noReply && reused && !resent && !isTimeout(err) && ctx.Err() == nil {
			resent = true
			continue
		}
		return r, err
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readReply reads one reply (at least its first byte is buffered) to a message
// sent with method. keep reports that the connection may carry more exchanges;
// bodyDeadline is called before a body is read.
func readReply(br *bufio.Reader, method string, bodyDeadline func() error) (r reply, keep bool, err error) {
	// Checked on the first bytes, before waiting for a line end that garbage may
	// never send (the reply timeout would then hide what is wrong).
	if err = checkHTTP(br); err != nil {
		return r, false, err
	}
	h, err := readReplyHead(br)
	if err != nil {
		return r, false, err
	}
	r.code = h.code
	class := classifyStatus(r.code)
	if class == retryable && h.retryAfter != "" {
		r.retryAfter, r.hasRetryAfter = parseRetryAfter(h.retryAfter, time.Now())
	}
	keep = !h.close
	if method == "HEAD" || r.code == 204 || r.code == 304 || r.code == 101 {
		return r, keep && r.code != 101, nil
	}
	if !h.chunked && h.length == 0 {
		return r, keep, nil // the usual empty reply: nothing more to read
	}
	// A body that stalls or breaks costs the connection, not the reply.
	if err := bodyDeadline(); err != nil {
		return r, false, nil
	}
	var snip []byte
	if class != accepted {
		snip = make([]byte, 0, snippetBytes+1) // one more byte tells that it was cut
	}
	snip, clean := readBody(br, h.length, h.chunked, snip)
	if class != accepted {
		r.snippet = snippetText(snip)
	}
	return r, keep && clean, nil
}

// snippetText makes a reply body fit for a log line: valid UTF-8, control bytes
// (terminal escapes, line breaks) as spaces, cut at snippetBytes with a mark.
func snippetText(b []byte) string {
	cut := len(b) > snippetBytes
	if cut {
		b = b[:snippetBytes]
	}
	b = bytes.ToValidUTF8(b, []byte("?"))
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	s := strings.TrimSpace(string(b))
	if cut {
		s += " [cut]"
	}
	return s
}

var httpPrefix = []byte("HTTP/")

// notHTTPError is a reply that does not start as HTTP: most often node.url names
// another service's port (an SSH or SMTP banner, a binary protocol).
type notHTTPError struct{ sample string }

func (e *notHTTPError) Error() string {
	return fmt.Sprintf("reply is not HTTP: it starts %q", e.sample)
}

// checkHTTP fails when the reply's buffered first bytes cannot begin "HTTP/".
func checkHTTP(br *bufio.Reader) error {
	b, _ := br.Peek(min(br.Buffered(), len(httpPrefix)))
	if bytes.HasPrefix(httpPrefix, b) {
		return nil
	}
	return newNotHTTP(br)
}

func newNotHTTP(br *bufio.Reader) error {
	b, _ := br.Peek(min(br.Buffered(), 64))
	return &notHTTPError{sample: string(bytes.ToValidUTF8(b, []byte("?")))}
}

// replyHead is what the client uses of a reply's status line and headers.
type replyHead struct {
	code       int
	length     int64 // Content-Length; -1: none (body until close, unless chunked)
	chunked    bool
	close      bool // the connection must not be reused
	retryAfter string
}

// readReplyHead reads the status line and headers of the final reply (1xx
// informational replies before it are skipped).
func readReplyHead(br *bufio.Reader) (replyHead, error) {
	budget := maxHeaderBytes
	for n1xx := 0; ; n1xx++ {
		h, err := readOneHead(br, &budget)
		if err != nil {
			return h, err
		}
		if h.code < 100 || h.code > 199 || h.code == 101 {
			return h, nil
		}
		if n1xx >= max1xxReplies {
			return h, textproto.ProtocolError("malformed HTTP reply: too many 1xx informational responses")
		}
	}
}

func readOneHead(br *bufio.Reader, budget *int) (replyHead, error) {
	h := replyHead{length: -1}
	line, err := readLine(br, budget)
	if err != nil {
		return h, err
	}
	if !bytes.HasPrefix(line, httpPrefix) {
		return h, &notHTTPError{sample: string(bytes.ToValidUTF8(line[:min(len(line), 64)], []byte("?")))}
	}
	// Parsed as net/http does: "HTTP/x.y SP code [SP reason]".
	proto, status, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return h, textproto.ProtocolError(fmt.Sprintf("malformed HTTP response %q", line))
	}
	status = bytes.TrimLeft(status, " ")
	code, _, _ := bytes.Cut(status, []byte{' '})
	if len(code) != 3 || !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) {
		return h, textproto.ProtocolError(fmt.Sprintf("malformed HTTP status code %q", code))
	}
	h.code = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(proto) != 8 || string(proto[:5]) != "HTTP/" || !isDigit(proto[5]) || proto[6] != '.' || !isDigit(proto[7]) {
		return h, textproto.ProtocolError(fmt.Sprintf("malformed HTTP version %q", proto))
	}
	major, minor := proto[5], proto[7] // line is the reader's buffer: read before the next line
	closeTok, keepAlive := false, false
	for {
		line, err := readLine(br, budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obsolete line folding: a continuation of a header not used here
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return h, textproto.ProtocolError(fmt.Sprintf("malformed MIME header line: %q", line))
		}
		value = bytes.Trim(value, " \t")
		// Framing errors are reason "connection", malformed lines "protocol", as with net/http.
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, err := strconv.ParseUint(string(value), 10, 63)
			if err != nil || len(value) == 0 || value[0] == '+' {
				return h, fmt.Errorf("node reply: bad Content-Length %q", value)
			}
			if h.length >= 0 && h.length != int64(n) {
				return h, errors.New("node reply: conflicting Content-Length headers")
			}
			h.length = int64(n)
		case asciiEqualFold(name, "Transfer-Encoding"):
			if h.chunked || !asciiEqualFold(value, "chunked") {
				return h, fmt.Errorf("node reply: unsupported transfer encoding %q", value)
			}
			h.chunked = true
		case asciiEqualFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = bytes.Trim(tok, " \t")
				if asciiEqualFold(tok, "close") {
					closeTok = true
				} else if asciiEqualFold(tok, "keep-alive") {
					keepAlive = true
				}
			}
		case asciiEqualFold(name, "Retry-After"):
			if h.retryAfter == "" {
				h.retryAfter = string(value)
			}
		}
	}
	switch {
	case major != '1':
		h.close = true
	case minor == '0': // HTTP/1.0 keeps the connection only if it says keep-alive
		h.close = closeTok || !keepAlive
	default:
		h.close = closeTok
	}
	if h.chunked {
		h.length = -1
	} else if h.length < 0 && h.code >= 200 && h.code != 204 && h.code != 304 {
		h.close = true // the body runs until the node closes the connection
	}
	return h, nil
}

// readLine reads one line without its CRLF (or LF), charging it to budget. As net/http's
// textproto reader, a last line cut by EOF is returned as a line; io.EOF comes only
// when no byte was left.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull { // a line longer than the buffer: rare, copy it
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull && len(long) <= *budget {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	*budget -= len(line)
	if *budget < 0 {
		return nil, fmt.Errorf("node: reply headers exceeded %d bytes; aborted", maxHeaderBytes)
	}
	if err != nil && !(err == io.EOF && len(line) > 0) {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), nil
}

// readBody consumes a reply body (Content-Length length, chunked, or until EOF when
// length < 0 and not chunked), appending its first bytes to snip up to its capacity.
// clean reports that the whole body was read within drainBytes, so the connection
// can carry another exchange.
func readBody(br *bufio.Reader, length int64, chunked bool, snip []byte) ([]byte, bool) {
	budget := int64(drainBytes)
	take := func(n int64) bool { // consumes n body bytes
		if k := min(n, int64(cap(snip)-len(snip))); k > 0 {
			got, err := io.ReadFull(br, snip[len(snip):len(snip)+int(k)])
			snip = snip[:len(snip)+got]
			if err != nil {
				return false
			}
			n -= k
		}
		got, err := br.Discard(int(n))
		return err == nil && int64(got) == n
	}
	switch {
	case chunked:
		var scratch = maxHeaderBytes
		for {
			line, err := readLine(br, &scratch)
			if err != nil {
				return snip, false
			}
			if i := bytes.IndexByte(line, ';'); i >= 0 {
				line = line[:i]
			}
			n, err := strconv.ParseUint(string(bytes.Trim(line, " \t")), 16, 63)
			if err != nil {
				return snip, false
			}
			if n == 0 { // last chunk: skip trailers up to the empty line
				for {
					t, err := readLine(br, &scratch)
					if err != nil {
						return snip, false
					}
					if len(t) == 0 {
						return snip, true
					}
				}
			}
			if budget -= int64(n); budget < 0 || !take(int64(n)) {
				return snip, false
			}
			if crlf, err := readLine(br, &scratch); err != nil || len(crlf) != 0 {
				return snip, false
			}
		}
	case length >= 0:
		if length > budget {
			take(min(length, int64(cap(snip)-len(snip))))
			return snip, false
		}
		return snip, take(length)
	default: // until EOF: the connection is closed anyway
		take(min(budget, int64(cap(snip)-len(snip))))
		return snip, false
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// asciiEqualFold compares b with an ASCII string, ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
