package node

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

func init() { registerProfile(DefaultProfile, newRawProfile) }

// message is what both messages of one call share, built once per call by the
// profile. The transport and its log lines read id, method, fwdHost and url; the
// rest is the profile's.
type message struct {
	id      string
	method  string // of the request message as sent
	host    string // Host header
	fwdHost string
	fwdFor  string
	ua      string // "" = none
	status  string
	target  string // request target, as sent (and logged)
	ext     any    // a profile's own per-call data; nil for raw
}

// rawProfile is the shape the connector assumes by default (the contract doc's
// `raw` profile): the request message is the call's method and path with the
// identity headers and no body; the response message goes to the same target
// with node.response_method and the status in node.headers.response_code. Every
// element of it is a setting: node.request_id_format, node.host_mode,
// node.path_prefix, node.response_method, node.connector_type,
// node.connector_version, node.headers.*, node.extra_headers.
type rawProfile struct {
	env profileEnv
	// The headers of each message kind after Host, User-Agent and Content-Length.
	reqHdrs, respHdrs []hdrLine
}

func newRawProfile(env profileEnv) profile {
	p := &rawProfile{env: env}
	p.buildHeaderLines()
	return p
}

// message checks and normalises what the call gives, so that every message is a
// valid HTTP/1.1 request (a refused one would be retried forever and stall the stream).
// A call that cannot be sent is a *RejectedError with code 0; label names why for
// unsendable_total.
func (p *rawProfile) message(m *message, call *accesslog.APICall) (label string, err error) {
	id := call.NodeID
	if id == "" {
		id = call.RequestID
	}
	m.id, m.method = encodeID(id), call.Method
	if p.env.cfg.RequestIDFormat == RequestIDHex && id != "" {
		sum := sha256.Sum256([]byte(id))
		m.id = hex.EncodeToString(sum[:16])
	}
	notSendable := func(label, reason string) (string, error) {
		return label, &RejectedError{RequestID: m.id, Message: kindRequest, Reason: reason}
	}
	if m.id == "" {
		// The id pairs the two messages at the node: a made-up one would not be
		// the same on a redelivery, so the node could not see it as a repeat.
		return notSendable("no_request_id", "no request id")
	}
	if !isToken(m.method) {
		return notSendable("invalid_method", "invalid HTTP method "+strconv.Quote(call.Method))
	}
	// The API's host, never the node's: the node attributes the call to an API
	// (allowed_hosts, discovery) by it.
	switch {
	case call.Host == "":
		return notSendable("no_host", "no host")
	case !validHost(call.Host):
		return notSendable("invalid_host", "invalid host "+strconv.Quote(call.Host))
	}
	m.fwdHost = call.Host
	m.host = p.env.nodeHost
	if p.env.cfg.HostMode == HostModeOriginal {
		m.host = removeZone(m.fwdHost)
	}
	m.fwdFor = bareIP(call.SourceIP)
	if call.UserAgent != "-" {
		m.ua = sanitizeValue(call.UserAgent)
	}
	m.status = statusText(call.Status)

	target := p.env.basePath + escapePath(call.Path)
	if strings.HasPrefix(target, "//") {
		// A target starting "//" is refused unless it unescapes as a path
		// (node.path_prefix is sent unescaped), as when net/http parsed it.
		if _, err := url.PathUnescape(target); err != nil {
			return notSendable("invalid_path", "invalid path "+strconv.Quote(call.Path))
		}
	}
	m.target = target
	return "", nil
}

// maxIDBytes caps the request id header value; longer ids keep a prefix and a hash.
const maxIDBytes = 256

// encodeID maps a call id to its header value, injectively: bytes that are not
// visible ASCII (controls, space, tab, non-ASCII) and '%' itself are percent-encoded,
// so ids that differ only there stay different and none becomes empty or is
// trimmed. An id still longer than maxIDBytes keeps its first bytes and gets a
// SHA-256 of the whole id (distinct in practice). Ids as API Gateway writes them
// (hex, UUIDs, base64-like) pass unchanged.
func encodeID(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if idEscape(id[i]) {
			n++
		}
	}
	if n == 0 && len(id) <= maxIDBytes {
		return id
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(id)+2*n)
	for i := 0; i < len(id); i++ {
		if c := id[i]; idEscape(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	if len(b) <= maxIDBytes {
		return string(b)
	}
	sum := sha256.Sum256([]byte(id))
	const keep = maxIDBytes - 1 - 2*len(sum)
	cut := keep
	for k := max(cut-2, 0); k < cut; k++ { // do not split a %XX escape
		if b[k] == '%' {
			cut = k
			break
		}
	}
	out := append(b[:cut:cut], '~')
	for _, x := range sum {
		out = append(out, hex[x>>4], hex[x&15])
	}
	return string(out)
}

func idEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '%' }

// hdrField is where the value of a message header comes from.
type hdrField uint8

const (
	fieldStatic hdrField = iota // line holds the whole header line
	fieldID
	fieldFwdHost
	fieldFwdFor
	fieldStatus
)

// hdrLine is one header of a message kind; line is "Name: " (or the whole line
// with CRLF for a static header).
type hdrLine struct {
	line  string
	field hdrField
}

// buildHeaderLines lays out the headers of each message kind in the order net/http
// wrote them: after Host, User-Agent and Content-Length, sorted by name.
func (p *rawProfile) buildHeaderLines() {
	h := p.env.cfg.Headers
	canon := textproto.CanonicalMIMEHeaderKey
	base := staticHeaders(p.env.static)
	base = append(base,
		namedLine{name: canon(h.RequestID), field: fieldID},
		namedLine{name: canon(h.ForwardedHost), field: fieldFwdHost},
		namedLine{name: canon(h.ForwardedFor), field: fieldFwdFor})
	resp := append(slices.Clone(base), namedLine{name: canon(h.ResponseCode), field: fieldStatus})
	p.reqHdrs, p.respHdrs = sortedLines(base), sortedLines(resp)
}

// namedLine is a header of a message kind before it is laid out: a name and
// where its value comes from.
type namedLine struct {
	name  string
	field hdrField
	value string // of a static header
}

// staticHeaders are the headers every message carries (connector type and
// version, node.extra_headers), canonical names.
func staticHeaders(static http.Header) []namedLine {
	out := make([]namedLine, 0, len(static)+4)
	for k, v := range static {
		out = append(out, namedLine{k, fieldStatic, v[0]})
	}
	return out
}

// sortedLines lays out headers sorted by name, as net/http wrote them.
func sortedLines(ns []namedLine) []hdrLine {
	slices.SortFunc(ns, func(a, b namedLine) int { return strings.Compare(a.name, b.name) })
	out := make([]hdrLine, len(ns))
	for i, n := range ns {
		if n.field == fieldStatic {
			out[i] = hdrLine{n.name + ": " + trimValue(n.value) + "\r\n", fieldStatic}
		} else {
			out[i] = hdrLine{n.name + ": ", n.field}
		}
	}
	return out
}

// appendMessage writes the message of the given kind (request or response)
// into b, byte for byte as net/http wrote it.
func (p *rawProfile) appendMessage(b []byte, m *message, kind string) []byte {
	method, hdrs := m.method, p.reqHdrs
	if kind == kindResponse {
		method, hdrs = p.env.cfg.ResponseMethod, p.respHdrs
	}
	b = appendHead(b, method, m.target, m.host)
	if kind == kindRequest && m.ua != "" {
		b = append(b, "User-Agent: "...)
		b = append(b, trimValue(m.ua)...)
		b = append(b, "\r\n"...)
	}
	// A body-less message: no length for GET and HEAD, which means no body
	// (RFC 9112 6.3), "Content-Length: 0" for every other method.
	if method != "GET" && method != "HEAD" {
		b = append(b, "Content-Length: 0\r\n"...)
	}
	b = appendHeaders(b, hdrs, m)
	return append(b, "\r\n"...)
}

// appendHead writes the request line and the Host header.
func appendHead(b []byte, method, target, host string) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	return append(b, "\r\n"...)
}

// appendHeaders writes laid-out header lines with their values from m.
func appendHeaders(b []byte, hdrs []hdrLine, m *message) []byte {
	for _, h := range hdrs {
		b = append(b, h.line...)
		if h.field == fieldStatic {
			continue
		}
		switch h.field {
		case fieldID:
			b = append(b, trimValue(m.id)...)
		case fieldFwdHost:
			b = append(b, m.fwdHost...)
		case fieldFwdFor:
			b = append(b, m.fwdFor...)
		case fieldStatus:
			b = append(b, m.status...)
		}
		b = append(b, "\r\n"...)
	}
	return b
}

// trimValue drops a header value's leading and trailing blanks, as net/http did.
// Checked first: most values have none, and strings.Trim builds its byte set per call.
func trimValue(s string) string {
	if s == "" || !isBlank(s[0]) && !isBlank(s[len(s)-1]) {
		return s
	}
	return strings.Trim(s, " \t")
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// removeZone drops an IPv6 zone from a bracketed host, as net/http did for Host.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndexByte(host, ']')
	if i < 0 {
		return host
	}
	j := strings.LastIndexByte(host[:i], '%')
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

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
		if !pathChar[p[i]] && needsEscape(p, i) { // '%' is not a pathChar
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
func validHost(h string) bool { return allIn(h, &hostChar) }

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

// allIn reports whether s is non-empty and every byte of it is in set.
func allIn(s string, set *[256]bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}

// bareIP returns the call's client address without a port (nodes before 0.22.1
// mishandle ip:port), or UnknownSourceIP when there is no usable one.
func bareIP(s string) string {
	if i := strings.IndexByte(s, ','); i >= 0 { // a forwarded list: the first is the client
		s = strings.TrimSpace(s[:i])
	}
	if isDottedQuad(s) { // what API Gateway logs for most clients: no parse needed
		return s
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

// isDottedQuad reports whether s is an IPv4 address as netip.ParseAddr
// accepts it: four decimal fields of at most 255, without leading zeros.
func isDottedQuad(s string) bool {
	fields, val, digits := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || fields == 3 && i < len(s) {
				return false
			}
			fields++
			val, digits = 0, 0
			continue
		}
		c := s[i]
		if !isDigit(c) || digits > 0 && val == 0 { // a leading zero
			return false
		}
		val = val*10 + int(c-'0')
		digits++
		if val > 255 {
			return false
		}
	}
	return fields == 4
}

// sanitizeValue replaces control bytes, which may not appear in header values
// (the user agent: lossy is fine there, it pairs nothing).
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
