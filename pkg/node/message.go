package node

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// message is what both messages of one call share. Built once per call.
type message struct {
	id       string
	method   string
	host     string // Host header
	fwdHost  string
	fwdFor   string
	ua       string // "" = none
	status   string
	url      *url.URL // shared by both messages and every attempt: the transport only reads it
	hdr      http.Header
	hdrKind  string // which message hdr is currently shaped for
	hdrVals  []string
	hdrDirty bool // hdr may still be read by an abandoned attempt: do not mutate, rebuild
}

// reusableHeader reports whether the request's header map may be reshaped for the
// response. The transport reads the map only while serialising it into its write
// buffer, before any byte is sent, so once a reply came that is over; a header that
// does not fit the buffer is flushed in parts, and a node answering early could
// race the rest, so such messages get a fresh map.
func (c *Client) reusableHeader(m *message) bool {
	const room = writeBufferSize - 512 // request line, Host, User-Agent framing
	size := c.staticBytes + len(m.id) + len(m.host) + len(m.fwdHost) + len(m.fwdFor) + len(m.ua) +
		len(m.url.Opaque) + len(m.url.RawPath) + 6*32 // header names and separators
	return !m.hdrDirty && size < room
}

// newMessage checks and normalises what the call gives, so that net/http never
// refuses a message (a refusal would be retried forever and stall the stream).
func (c *Client) newMessage(call *accesslog.APICall) (*message, error) {
	m := &message{id: sanitizeValue(call.RequestID), method: call.Method}
	if m.id == "" {
		// Request ids pair the two messages; without one, make a unique one for this delivery.
		m.id = "apigw-connector-" + strconv.FormatUint(rand.Uint64(), 16) + strconv.FormatUint(rand.Uint64(), 16)
	}
	if !isToken(m.method) {
		return nil, &RejectedError{RequestID: m.id, Message: kindRequest, Reason: "invalid HTTP method " + strconv.Quote(call.Method)}
	}

	m.fwdHost = c.nodeHost
	if validHost(call.Host) {
		m.fwdHost = call.Host
	}
	m.host = c.nodeHost
	if c.cfg.HostMode == HostModeOriginal {
		m.host = m.fwdHost
	}
	m.fwdFor = bareIP(call.SourceIP)
	if call.UserAgent != "-" {
		m.ua = sanitizeValue(call.UserAgent)
	}
	m.status = statusText(call.Status)

	target := c.basePath + escapePath(call.Path)
	m.url = &url.URL{Scheme: c.scheme, Host: c.dialHost}
	if strings.HasPrefix(target, "//") {
		// An opaque "//x" would be written as scheme://x: give Path and its exact encoding instead.
		p, err := url.PathUnescape(target)
		if err != nil {
			return nil, &RejectedError{RequestID: m.id, Message: kindRequest, Reason: "invalid path " + strconv.Quote(call.Path)}
		}
		m.url.Path, m.url.RawPath = p, target
	} else {
		// Opaque is written verbatim as the request target: the path goes as the log has it.
		m.url.Opaque = target
	}
	return m, nil
}

// header returns the header of the given message kind, reusing the request's map
// for the response when no attempt can still be reading it.
func (c *Client) header(m *message, kind string) http.Header {
	if m.hdr != nil && m.hdrKind == kind {
		return m.hdr
	}
	if m.hdr != nil && kind == kindResponse && c.reusableHeader(m) {
		m.hdr["User-Agent"] = noValue
		m.hdrVals[3] = m.status
		m.hdr[c.hResponseCode] = m.hdrVals[3:4:4]
		m.hdrKind = kind
		return m.hdr
	}
	h := make(http.Header, len(c.static)+6)
	for k, v := range c.static {
		h[k] = v
	}
	vals := make([]string, 4)
	vals[0], vals[1], vals[2] = m.id, m.fwdHost, m.fwdFor
	h[c.hRequestID] = vals[0:1:1]
	h[c.hForwardedHost] = vals[1:2:2]
	h[c.hForwardedFor] = vals[2:3:3]
	// A present but empty User-Agent stops net/http from sending its own.
	h["User-Agent"] = noValue
	// A nil Idempotency-Key is not sent but lets net/http resend a message that failed on a
	// reused keep-alive connection the node had just closed (no backoff needed there).
	h["Idempotency-Key"] = nil
	if kind == kindRequest {
		if m.ua != "" {
			vals[3] = m.ua
			h["User-Agent"] = vals[3:4:4]
		}
	} else {
		vals[3] = m.status
		h[c.hResponseCode] = vals[3:4:4]
	}
	m.hdr, m.hdrKind, m.hdrVals, m.hdrDirty = h, kind, vals, false
	return h
}

var noValue = []string{""}

// escapePath percent-encodes only the bytes that may not appear in a request-target
// path (RFC 3986 pchar and "/"); existing %XX escapes are kept as they are, so the
// node sees the path the client called. Curly braces, spaces, '?', '#' and non-ASCII
// bytes are encoded.
func escapePath(p string) string {
	if p == "" {
		return "/"
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if needsEscape(p, i) {
			n++
		}
	}
	lead := p[0] != '/'
	if n == 0 && !lead {
		return p
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(p)+2*n+1)
	if lead {
		b = append(b, '/')
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; needsEscape(p, i) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func needsEscape(p string, i int) bool {
	if c := p[i]; c != '%' {
		return !pathChar[c]
	}
	return i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2])
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

var pathChar = asciiSet("-._~!$&'()*+,;=:@/")

// validHost reports whether h can be sent as a Host header as is (ASCII host[:port]).
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !hostChar[h[i]] {
			return false
		}
	}
	return true
}

var hostChar = asciiSet("!$%&'()*+,-.:;=[]_~")

// asciiSet is the table of the ASCII letters and digits plus the bytes in extra.
func asciiSet(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

// bareIP returns the call's client address without a port (nodes before 0.22.1
// mishandle ip:port), or UnknownSourceIP when there is no usable one.
func bareIP(s string) string {
	if i := strings.IndexByte(s, ','); i >= 0 { // a forwarded list: the first is the client
		s = strings.TrimSpace(s[:i])
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return a.WithZone("").String()
		}
		return s
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").String()
	}
	return UnknownSourceIP
}

// sanitizeValue replaces control bytes, which net/http refuses in header values.
func sanitizeValue(s string) string {
	if isHeaderValue(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}

var statusTexts = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusText(code int) string {
	if code >= 0 && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}
