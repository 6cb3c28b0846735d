package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wallarm/apigw-connector/internal/jsonscan"
)

// Reasons of a ParseError: stable metric labels.
const (
	ReasonNotJSON       = "not_json"       // not a JSON object (CLF, CSV, XML, malformed)
	ReasonMissingMethod = "missing_method" // no HTTP method (nor a route key carrying one)
	ReasonMissingPath   = "missing_path"   // no path (nor a route template)
	ReasonMissingStatus = "missing_status" // no status
	ReasonBadStatus     = "bad_status"     // status not a number in 100-599
	ReasonWebSocket     = "websocket"      // a WebSocket event, not an HTTP call
)

// ErrNotAPICall is wrapped by every ParseError, for callers that only branch
// on "skip this line".
var ErrNotAPICall = errors.New("line is not an API call")

// ParseError says why a line is not an API call.
type ParseError struct {
	Reason string // one of the Reason* constants
	Detail string // human-readable explanation, with the fix when there is one
}

func (e *ParseError) Error() string { return "parse access-log line: " + e.Reason + ": " + e.Detail }

// Unwrap lets errors.Is(err, ErrNotAPICall) match.
func (e *ParseError) Unwrap() error { return ErrNotAPICall }

// FormatDocs is where the README documents the access-log formats to configure.
const FormatDocs = "README.md#access-log-format"

const formatHint = "configure the stage's access-log format as JSON (" + FormatDocs + "), " +
	"or map your keys in " + MappingPath

// Parser parses access-log lines with a Mapping. It is immutable after
// NewParser and safe for concurrent use.
type Parser struct {
	keys  keyTable
	shape atomic.Pointer[shape] // key order of recent lines, a lookup shortcut
	// nested holds the dot-path keys by their first part; nil when the mapping
	// has none, so lines without nested objects pay nothing.
	nested map[string]*nestNode
}

// nestNode is one level of the dot-path keys: the leaf a key ends at, and
// the keys continuing below it.
type nestNode struct {
	children map[string]*nestNode
	leaf     bool
	field    uint8
	rank     uint8 // position in the field's list + 1
}

// maxNestDepth bounds dot paths (and the recursion that follows them).
const maxNestDepth = 8

// NewParser validates m and returns a parser for it.
func NewParser(m Mapping) (*Parser, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("create access-log parser: %w", err)
	}
	p := &Parser{}
	lists, names := m.lists()
	for f := range numFields {
		for rank, k := range lists[f] {
			if rank >= 250 {
				return nil, fmt.Errorf("create access-log parser: %s.%s lists more than 250 keys: keep the ones your format uses", MappingPath, names[f])
			}
			p.keys.add(k, uint8(f), uint8(rank))
			if strings.Contains(k, ".") {
				p.addNested(strings.Split(k, "."), uint8(f), uint8(rank)+1)
			}
		}
	}
	return p, nil
}

func (p *Parser) addNested(parts []string, field, rank uint8) {
	if p.nested == nil {
		p.nested = map[string]*nestNode{}
	}
	level := p.nested
	var n *nestNode
	for _, part := range parts {
		if level == nil {
			n.children = map[string]*nestNode{}
			level = n.children
		}
		if n = level[part]; n == nil {
			n = &nestNode{}
			level[part] = n
		}
		level = n.children
	}
	if !n.leaf { // Validate refuses a key in two fields; the first rank wins
		n.leaf, n.field, n.rank = true, field, rank
	}
}

// span locates one value in the line.
type span struct {
	start, end int32 // body (without quotes for strings)
	rank       uint8 // rank+1 of the key that set it; 0 = unset
	escaped    bool
}

// Parse parses one access-log line. Strings in the result do not alias line.
func (p *Parser) Parse(line []byte) (APICall, error) {
	var call APICall
	var vals [numFields]span
	if err := p.scan(line, &vals); err != nil {
		return call, err
	}
	if vals[fEventType].rank != 0 || vals[fConnectionID].rank != 0 {
		return call, &ParseError{Reason: ReasonWebSocket, Detail: "line has eventType/connectionId: a WebSocket API event, not an HTTP call"}
	}

	// Status first: a line without one is not a call.
	st := &vals[fStatus]
	if st.rank == 0 {
		return call, &ParseError{Reason: ReasonMissingStatus, Detail: "no status value (" + p.keys.names(fStatus) + ")"}
	}
	status, ok := jsonscan.Int(line[st.start:st.end])
	if !ok || status < 100 || status > 599 || bytes.IndexByte(line[st.start:st.end], '.') >= 0 {
		return call, &ParseError{Reason: ReasonBadStatus, Detail: fmt.Sprintf("status %q is not an HTTP status (100-599)", clip(line[st.start:st.end]))}
	}
	call.Status = int(status)

	// Every string the call keeps is copied into one allocation: the scratch
	// collects them and a single string conversion owns them all.
	var scratch [512]byte
	buf := scratch[:0]
	type ref struct{ off, end int }
	var refs [numFields]ref
	put := func(f int) {
		v := &vals[f]
		if v.rank == 0 {
			return
		}
		off := len(buf)
		if v.escaped {
			nb, err := jsonscan.AppendUnescaped(buf, line[v.start:v.end])
			if err != nil { // keep the raw text rather than lose the value
				nb = append(buf[:off], line[v.start:v.end]...)
			}
			buf = nb
		} else {
			buf = append(buf, line[v.start:v.end]...)
		}
		refs[f] = ref{off, len(buf)}
	}

	// Method: from its key, else from the route key ("GET /pets/{id}").
	var routeKeyTemplate []byte
	if rk := &vals[fRouteKey]; rk.rank != 0 {
		k := line[rk.start:rk.end]
		if sp := bytes.IndexByte(k, ' '); sp > 0 {
			if vals[fMethod].rank == 0 && !bytes.EqualFold(k[:sp], []byte("ANY")) {
				vals[fMethod] = span{start: rk.start, end: rk.start + int32(sp), rank: 1}
			}
			routeKeyTemplate = bytes.TrimSpace(k[sp+1:])
		}
		// "$default" and other bare route keys carry no template.
	}
	m := &vals[fMethod]
	if m.rank == 0 {
		detail := "no HTTP method value (" + p.keys.names(fMethod) + ", or a routeKey like \"GET /path\")"
		if rk := &vals[fRouteKey]; rk.rank != 0 {
			detail = fmt.Sprintf("no HTTP method value (%s), and routeKey %q names none: add %s to the stage's access-log format (%s)",
				p.keys.names(fMethod), clip(line[rk.start:rk.end]), `"httpMethod":"$context.httpMethod"`, FormatDocs)
		}
		return call, &ParseError{Reason: ReasonMissingMethod, Detail: detail}
	}
	call.Method = internMethod(line[m.start:m.end])
	if call.Method == "" {
		off := len(buf)
		for _, c := range line[m.start:m.end] {
			if !tchar[c] || len(buf)-off >= 32 {
				return APICall{}, &ParseError{Reason: ReasonMissingMethod,
					Detail: fmt.Sprintf("method %q is not an HTTP method token", clip(line[m.start:m.end]))}
			}
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			buf = append(buf, c)
		}
		refs[fMethod] = ref{off, len(buf)}
	}

	put(fPath)
	if vals[fRouteTemplate].rank != 0 {
		put(fRouteTemplate)
	} else if len(routeKeyTemplate) > 0 {
		off := len(buf)
		buf = append(buf, routeKeyTemplate...)
		refs[fRouteTemplate] = ref{off, len(buf)}
	}
	if vals[fPath].rank == 0 {
		if tmpl := buf[refs[fRouteTemplate].off:refs[fRouteTemplate].end]; len(tmpl) == 0 || bytes.Contains(tmpl, []byte("+}")) {
			return APICall{}, p.noPathError(line, &vals, string(tmpl)) // a copy: buf must not escape
		}
		// AWS's own example REST format logs only resourcePath: a template
		// without a greedy variable still names one endpoint, so it stands in.
		refs[fPath] = refs[fRouteTemplate]
	}
	put(fExtendedRequestID)
	put(fRequestID)
	put(fHost)
	if pr := &vals[fProtocol]; pr.rank != 0 {
		if call.Protocol = internProtocol(line[pr.start:pr.end]); call.Protocol == "" {
			put(fProtocol)
		}
	}
	if ip := &vals[fSourceIP]; ip.rank != 0 {
		if bare := bareIP(line[ip.start:ip.end]); len(bare) > 0 {
			off := len(buf)
			buf = append(buf, bare...)
			refs[fSourceIP] = ref{off, len(buf)}
		}
	}
	put(fUserAgent)
	put(fStage)
	put(fAPIID)
	put(fErrorMessage)

	if v := &vals[fResponseLatency]; v.rank != 0 {
		call.ResponseLatency, call.HasResponseLatency = parseMillis(line[v.start:v.end])
	}
	if v := &vals[fIntegrationLatency]; v.rank != 0 {
		call.IntegrationLatency, call.HasIntegrationLatency = parseMillis(line[v.start:v.end])
	}
	if v := &vals[fIntegrationStatus]; v.rank != 0 {
		if n, ok := jsonscan.Int(line[v.start:v.end]); ok && n >= 100 && n <= 599 {
			call.IntegrationStatus = int(n)
		}
	}
	if v := &vals[fResponseLength]; v.rank != 0 {
		if n, ok := jsonscan.Int(line[v.start:v.end]); ok && n >= 0 {
			call.ResponseLength, call.HasResponseLength = n, true
		}
	}
	if v := &vals[fRequestTimeEpoch]; v.rank != 0 {
		if ms, ok := jsonscan.Int(line[v.start:v.end]); ok && ms > 0 {
			call.RequestTime = time.UnixMilli(ms).UTC()
		}
	}
	if v := &vals[fRequestTime]; v.rank != 0 && call.RequestTime.IsZero() {
		if t, ok := parseCLFTime(line[v.start:v.end]); ok {
			call.RequestTime = t
		}
	}

	s := string(buf)
	str := func(f int) string { return s[refs[f].off:refs[f].end] }
	if call.Method == "" {
		call.Method = str(fMethod)
	}
	call.Path = str(fPath)
	call.RouteTemplate = str(fRouteTemplate)
	call.RequestID = str(fRequestID)
	call.ExtendedRequestID = str(fExtendedRequestID)
	call.Host = str(fHost)
	if call.Protocol == "" {
		call.Protocol = str(fProtocol)
	}
	call.SourceIP = str(fSourceIP)
	call.UserAgent = str(fUserAgent)
	call.Stage = str(fStage)
	call.APIID = str(fAPIID)
	call.ErrorMessage = str(fErrorMessage)
	return call, nil
}

// pathFix is what every missing-path reason tells the user to add.
const pathFix = `add "path":"$context.path" to the stage's access-log format (` + FormatDocs + `)`

// noPathError explains why a line without a path cannot use its route
// template tmpl instead, naming what the line has and the fix. A routeKey of
// $default carries no path at all, and a greedy template ("/{proxy+}") would
// collapse every call of the API into one endpoint. (A template without a
// greedy variable, as AWS's example REST format logs, stands in for the path.)
func (p *Parser) noPathError(line []byte, vals *[numFields]span, tmpl string) error {
	noPath := "no path value (" + p.keys.names(fPath) + ")"
	switch {
	case tmpl != "":
		return &ParseError{Reason: ReasonMissingPath, Detail: fmt.Sprintf(
			"%s, and the route template %q is not a path: its greedy variable matches every path, so all calls would collapse into one endpoint; %s",
			noPath, clip([]byte(tmpl)), pathFix)}
	case vals[fRouteKey].rank != 0:
		rk := &vals[fRouteKey]
		return &ParseError{Reason: ReasonMissingPath, Detail: fmt.Sprintf(
			"%s, and routeKey %q is a route, not a path; %s", noPath, clip(line[rk.start:rk.end]), pathFix)}
	}
	return &ParseError{Reason: ReasonMissingPath, Detail: noPath + " and no route template (" +
		p.keys.names(fRouteTemplate) + ", " + p.keys.names(fRouteKey) + "); " + pathFix}
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// scan walks the top-level object and records the span of every mapped key's
// value. Values "-", "" and null count as absent.
func (p *Parser) scan(line []byte, vals *[numFields]span) error {
	i := jsonscan.SkipSpace(line, jsonscan.SkipBOM(line, 0))
	if i >= len(line) {
		return &ParseError{Reason: ReasonNotJSON, Detail: "empty line: " + formatHint}
	}
	if line[i] != '{' {
		looks, fix := sniffFormat(line[i:])
		return &ParseError{Reason: ReasonNotJSON, Detail: "line is not JSON (looks like " + looks + "): " + fix}
	}
	i++
	first := true
	sh := p.shape.Load()
	predict := sh != nil
	if !predict {
		sh = &shape{}
	}
	plain := true // no escaped key seen
	var keySpans [maxShapeKeys][2]int32
	nkeys := 0
	for {
		if i < len(line) && jsonscan.IsSpace(line[i]) {
			i = jsonscan.SkipSpace(line, i)
		}
		if i >= len(line) {
			return malformed(i, "unexpected end of line")
		}
		if line[i] == '}' {
			i = jsonscan.SkipSpace(line, i+1)
			if i < len(line) {
				return malformed(i, "data after the JSON object")
			}
			if (!predict || nkeys != len(sh.keys)) && plain && nkeys <= len(keySpans) {
				p.learnShape(line, keySpans[:nkeys])
			}
			return nil
		}
		if !first {
			if line[i] != ',' {
				return malformed(i, "expected ',' or '}'")
			}
			i++
			if i < len(line) && jsonscan.IsSpace(line[i]) {
				i = jsonscan.SkipSpace(line, i)
			}
		}
		first = false
		if i >= len(line) || line[i] != '"' {
			return malformed(i, "expected a key")
		}
		var (
			f     int
			rank  uint8
			known bool
			kend  int
		)
		// Lines of one stage repeat their keys in the same order: try the
		// key the previous line had at this position before scanning.
		if predict && nkeys < len(sh.keys) {
			k := &sh.keys[nkeys]
			if e := i + 1 + len(k.key); e < len(line) && line[e] == '"' && string(line[i+1:e]) == k.key {
				kend, f, rank, known = e+1, int(k.field), k.rank, k.rank != 0
			} else {
				predict = false
			}
		} else {
			predict = false
		}
		if !predict {
			end, kesc, err := jsonscan.String(line, i)
			if err != nil {
				return malformed(i, "unterminated key")
			}
			kend = end
			key := line[i+1 : end-1]
			if kesc {
				var unesc [64]byte
				if u, err := jsonscan.AppendUnescaped(unesc[:0], key); err == nil {
					key = u
				}
				plain = false // a shape holds raw keys without escapes only
			}
			f, rank, known = p.keys.lookup(key)
		}
		if nkeys < len(keySpans) {
			keySpans[nkeys] = [2]int32{int32(i + 1), int32(kend - 1)}
		}
		nkeys++
		i = kend
		if i < len(line) && line[i] != ':' {
			i = jsonscan.SkipSpace(line, i)
		}
		if i >= len(line) || line[i] != ':' {
			return malformed(i, "expected ':'")
		}
		i++
		if i < len(line) && jsonscan.IsSpace(line[i]) {
			i = jsonscan.SkipSpace(line, i)
		}
		if i >= len(line) {
			return malformed(i, "expected a value")
		}
		c := line[i]
		switch {
		case c == '"':
			end, esc, err := jsonscan.String(line, i)
			if err != nil {
				return malformed(i, "unterminated string")
			}
			if known && (vals[f].rank == 0 || rank < vals[f].rank) {
				body := line[i+1 : end-1]
				if len(body) > 0 && !(len(body) == 1 && body[0] == '-') {
					vals[f] = span{start: int32(i + 1), end: int32(end - 1), rank: rank, escaped: esc}
				}
			}
			i = end
		case c == '{' || c == '[':
			// Dot-path keys: the key's span is in keySpans (the first
			// maxShapeKeys keys of a line), which keeps the loop lean.
			if c == '{' && p.nested != nil && nkeys <= len(keySpans) {
				ks := keySpans[nkeys-1]
				if n := p.nested[string(line[ks[0]:ks[1]])]; n != nil && n.children != nil {
					end, err := p.scanNested(line, i, n.children, vals, 1)
					if err != nil {
						return err
					}
					i = end
					continue
				}
			}
			end, err := jsonscan.Skip(line, i)
			if err != nil {
				return malformed(i, "bad nested value")
			}
			i = end
		default:
			end := jsonscan.Literal(line, i)
			if end == i {
				return malformed(i, "expected a value")
			}
			if known && (vals[f].rank == 0 || rank < vals[f].rank) && c != 'n' {
				vals[f] = span{start: int32(i), end: int32(end), rank: rank}
			}
			i = end
		}
	}
}

// scanNested walks the object at line[i] ('{') for the dot-path keys below
// one level, recording values like scan does, and returns the offset after it.
func (p *Parser) scanNested(line []byte, i int, level map[string]*nestNode, vals *[numFields]span, depth int) (int, error) {
	i++
	first := true
	for {
		i = jsonscan.SkipSpace(line, i)
		if i >= len(line) {
			return i, malformed(i, "unexpected end of line in a nested object")
		}
		if line[i] == '}' {
			return i + 1, nil
		}
		if !first {
			if line[i] != ',' {
				return i, malformed(i, "expected ',' or '}'")
			}
			i = jsonscan.SkipSpace(line, i+1)
		}
		first = false
		if i >= len(line) || line[i] != '"' {
			return i, malformed(i, "expected a key")
		}
		kend, _, err := jsonscan.String(line, i)
		if err != nil {
			return i, malformed(i, "unterminated key")
		}
		n := level[string(line[i+1:kend-1])]
		i = jsonscan.SkipSpace(line, kend)
		if i >= len(line) || line[i] != ':' {
			return i, malformed(i, "expected ':'")
		}
		i = jsonscan.SkipSpace(line, i+1)
		if i >= len(line) {
			return i, malformed(i, "expected a value")
		}
		c := line[i]
		switch {
		case c == '{' && n != nil && n.children != nil && depth < maxNestDepth:
			if i, err = p.scanNested(line, i, n.children, vals, depth+1); err != nil {
				return i, err
			}
		case c == '{' || c == '[':
			end, err := jsonscan.Skip(line, i)
			if err != nil {
				return i, malformed(i, "bad nested value")
			}
			i = end
		case c == '"':
			end, esc, err := jsonscan.String(line, i)
			if err != nil {
				return i, malformed(i, "unterminated string")
			}
			if n != nil && n.leaf {
				f := int(n.field)
				body := line[i+1 : end-1]
				if (vals[f].rank == 0 || n.rank < vals[f].rank) && len(body) > 0 && !(len(body) == 1 && body[0] == '-') {
					vals[f] = span{start: int32(i + 1), end: int32(end - 1), rank: n.rank, escaped: esc}
				}
			}
			i = end
		default:
			end := jsonscan.Literal(line, i)
			if end == i {
				return i, malformed(i, "expected a value")
			}
			if n != nil && n.leaf && c != 'n' {
				if f := int(n.field); vals[f].rank == 0 || n.rank < vals[f].rank {
					vals[f] = span{start: int32(i), end: int32(end), rank: n.rank}
				}
			}
			i = end
		}
	}
}

// shape is the key sequence of a recent line, shared by all goroutines and
// replaced (never modified) when a line's keys differ.
type shape struct {
	keys []shapeKey
}

type shapeKey struct {
	key   string
	field uint8
	rank  uint8 // 0: the key is not mapped
}

const maxShapeKeys = 48

// learnShape remembers the keys of a line that did not match the current
// shape. Its strings share one allocation.
func (p *Parser) learnShape(line []byte, spans [][2]int32) {
	n := 0
	for _, sp := range spans {
		n += int(sp[1] - sp[0])
	}
	buf := make([]byte, 0, n)
	for _, sp := range spans {
		buf = append(buf, line[sp[0]:sp[1]]...)
	}
	all := string(buf)
	sh := &shape{keys: make([]shapeKey, len(spans))}
	off := 0
	for k, sp := range spans {
		key := all[off : off+int(sp[1]-sp[0])]
		off += len(key)
		f, rank, ok := p.keys.lookup(line[sp[0]:sp[1]])
		if !ok {
			rank = 0
		}
		sh.keys[k] = shapeKey{key: key, field: uint8(f), rank: rank}
	}
	p.shape.Store(sh)
}

func malformed(at int, what string) *ParseError {
	return &ParseError{Reason: ReasonNotJSON, Detail: fmt.Sprintf("malformed JSON at offset %d: %s", at, what)}
}

// sniffFormat names the format a non-JSON line looks like and the fix, so the
// message tells the user what they configured (or subscribed) and what to do.
func sniffFormat(b []byte) (looks, fix string) {
	const wrongGroup = "the subscription filter is on the wrong log group: subscribe the log group the stage's access logging writes to (" + FormatDocs + ")"
	switch {
	case b[0] == '<':
		return "API Gateway's XML access-log format", formatHint
	case lambdaPlatformLine(b):
		return "a Lambda function's log line (START/END/REPORT RequestId), not an API Gateway access log", wrongGroup
	case lambdaAppLine(b):
		return "a Lambda function's application log line (timestamp, request id, level), not an API Gateway access log", wrongGroup
	case executionLogLine(b):
		return "an API Gateway execution log line (\"(request id) ...\", log group API-Gateway-Execution-Logs_...), not an access log", wrongGroup
	case keyValueText(b):
		return "\"key: value\" text (the Serverless Framework's default access-log format)", formatHint
	case bytes.Contains(b, []byte(" [")) && bytes.Contains(b, []byte("] \"")):
		return "CLF (Common Log Format)", formatHint
	case bytes.IndexByte(b, ',') >= 0:
		return "CSV", formatHint
	}
	return "plain text", formatHint
}

// lambdaPlatformLine matches the lines the Lambda runtime writes around each
// invocation: "START RequestId: ...", "END RequestId: ...", "REPORT RequestId: ...".
func lambdaPlatformLine(b []byte) bool {
	for _, p := range []string{"START RequestId: ", "END RequestId: ", "REPORT RequestId: ", "INIT_START ", "INIT_REPORT "} {
		if bytes.HasPrefix(b, []byte(p)) {
			return true
		}
	}
	return false
}

// lambdaAppLine matches a Lambda runtime's text log line:
// "2026-11-24T10:15:30.123Z\t<request id>\tINFO\tmessage".
func lambdaAppLine(b []byte) bool {
	parts := bytes.SplitN(b, []byte{'\t'}, 4)
	if len(parts) < 3 || len(parts[0]) < 20 || parts[0][4] != '-' || parts[0][10] != 'T' || parts[0][len(parts[0])-1] != 'Z' {
		return false
	}
	switch string(parts[2]) {
	case "INFO", "WARN", "ERROR", "DEBUG", "TRACE", "FATAL":
		return true
	}
	return false
}

// executionLogLine matches API Gateway's execution log, which starts each line
// with the request id in parentheses.
func executionLogLine(b []byte) bool {
	end := bytes.IndexByte(b, ')')
	return b[0] == '(' && end > 8 && end < 130 && isToken(b[1:end]) && len(b) > end+1 && b[end+1] == ' '
}

// keyValueText matches "requestId: x, ip: y, ...": at least two
// "identifier: value" pairs separated by ", ".
func keyValueText(b []byte) bool {
	parts := bytes.Split(b, []byte(", "))
	pairs := 0
	for n, part := range parts {
		k, _, ok := bytes.Cut(part, []byte(": "))
		if ok && len(k) > 0 && isIdent(k) {
			pairs++
		} else if n == 0 {
			return false
		}
	}
	// A value may hold ", " itself (a user agent): most parts must be pairs.
	return pairs >= 2 && pairs*2 >= len(parts)
}

func isIdent(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return len(b) > 0
}

// tchar marks the bytes of an HTTP token (RFC 9110), which a method is.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

var methods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"}

// internMethod returns the constant string of a known method in any case, or
// "" for others.
func internMethod(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	}
	for _, m := range methods {
		if bytes.EqualFold(b, []byte(m)) {
			return m
		}
	}
	return ""
}

func internProtocol(b []byte) string {
	switch string(b) {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/2.0":
		return "HTTP/2.0"
	case "HTTP/1.0":
		return "HTTP/1.0"
	case "HTTP/2":
		return "HTTP/2"
	}
	return ""
}

// bareIP strips what API Gateway or a user format may add around the client
// IP: spaces, a forwarded list ("a, b": the first is the client), a port
// ("1.2.3.4:5678", "[2001:db8::1]:443").
func bareIP(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if c := bytes.IndexByte(b, ','); c >= 0 {
		b = bytes.TrimSpace(b[:c])
	}
	if sp := bytes.IndexByte(b, ' '); sp >= 0 {
		b = b[:sp]
	}
	if len(b) > 0 && b[0] == '[' {
		if end := bytes.IndexByte(b, ']'); end > 0 {
			return b[1:end]
		}
		return b[1:]
	}
	// One colon: IPv4 with a port. IPv6 has at least two.
	if c := bytes.IndexByte(b, ':'); c >= 0 && bytes.IndexByte(b[c+1:], ':') < 0 {
		return b[:c]
	}
	return b
}

// parseMillis parses a millisecond count, possibly fractional ("12", "12.5").
func parseMillis(b []byte) (time.Duration, bool) {
	whole, ok := jsonscan.Int(b)
	if !ok || whole < 0 || whole > int64(1<<62)/int64(time.Millisecond) {
		return 0, false
	}
	d := time.Duration(whole) * time.Millisecond
	if dot := bytes.IndexByte(b, '.'); dot >= 0 {
		scale := time.Millisecond / 10
		for _, c := range b[dot+1:] {
			if scale == 0 {
				break
			}
			d += time.Duration(c-'0') * scale
			scale /= 10
		}
	}
	return d, true
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseCLFTime parses "24/Nov/2026:10:15:30 +0000" without allocating.
func parseCLFTime(b []byte) (time.Time, bool) {
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	day, ok1 := num(b[0:2])
	year, ok2 := num(b[7:11])
	hh, ok3 := num(b[12:14])
	mm, ok4 := num(b[15:17])
	ss, ok5 := num(b[18:20])
	zh, ok6 := num(b[22:24])
	zm, ok7 := num(b[24:26])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || (b[21] != '+' && b[21] != '-') {
		return time.Time{}, false
	}
	mon := 0
	for i, m := range months {
		if string(b[3:6]) == m {
			mon = i + 1
			break
		}
	}
	if mon == 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59 {
		return time.Time{}, false
	}
	off := (zh*60 + zm) * 60
	if b[21] == '-' {
		off = -off
	}
	t := time.Date(year, time.Month(mon), day, hh, mm, ss, 0, time.UTC).Add(-time.Duration(off) * time.Second)
	return t, true
}
