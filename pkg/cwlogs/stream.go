package cwlogs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/klauspost/compress/gzip"
)

// Streams: files and stdin are read one gzip member and one JSON value at a
// time, so memory stays flat in the input's size and the decompression cap
// applies per document, not per file.

// ErrBreak is returned once by a Members reader after a damaged stretch of
// gzip data: what was read before it may be an incomplete value and should
// be dropped. Reading goes on after it.
var ErrBreak = errors.New("gzip stream damaged: resynchronised at the next member")

// rewindWindow bounds the compressed bytes kept to resynchronise after a bad
// member: a truncated member reads on into the next one before the damage
// shows, rarely by more than a few KiB.
const rewindWindow = 1 << 20

// rawReader is an io.ByteReader over the compressed input that can go back
// to just after the current member's start (within rewindWindow).
type rawReader struct {
	r    io.Reader
	buf  []byte
	base int64 // input offset of buf[0]
	pos  int
	n    int
	keep int // buf[keep:] is retained (the current member's start)
	err  error
}

func (x *rawReader) fill() bool { return x.pos < x.n || x.more() }

// more reads more input, keeping buf[min(keep, pos):]; false at the end.
func (x *rawReader) more() bool {
	if x.err != nil {
		return false
	}
	if x.keep > x.pos {
		x.keep = x.pos
	}
	if x.pos-x.keep > rewindWindow {
		x.keep = x.pos - rewindWindow
	}
	if x.keep > 0 {
		copy(x.buf, x.buf[x.keep:x.n])
		x.base += int64(x.keep)
		x.pos -= x.keep
		x.n -= x.keep
		x.keep = 0
	}
	if x.n == len(x.buf) {
		nb := make([]byte, max(2*len(x.buf), 64<<10))
		copy(nb, x.buf[:x.n])
		x.buf = nb
	}
	m, err := x.r.Read(x.buf[x.n:])
	x.n += m
	if err != nil {
		x.err = err
	}
	return m > 0 || x.err == nil
}

func (x *rawReader) ReadByte() (byte, error) {
	if !x.fill() {
		return 0, x.eof()
	}
	c := x.buf[x.pos]
	x.pos++
	return c, nil
}

func (x *rawReader) Read(p []byte) (int, error) {
	if !x.fill() {
		return 0, x.eof()
	}
	n := copy(p, x.buf[x.pos:x.n])
	x.pos += n
	return n, nil
}

func (x *rawReader) eof() error {
	if x.err == nil {
		return io.EOF
	}
	return x.err
}

func (x *rawReader) offset() int64 { return x.base + int64(x.pos) }

// peek2 returns up to the next two bytes, and whether there are two.
func (x *rawReader) peek2() ([]byte, bool) {
	for x.n-x.pos < 2 && x.more() {
	}
	if x.n-x.pos < 2 {
		return x.buf[x.pos:x.n], false
	}
	return x.buf[x.pos : x.pos+2], true
}

// skipToHeader advances to the next gzip header (1f 8b 08) and reports how
// many bytes it skipped and whether one was found, and whether all skipped
// bytes were blank (whitespace or NUL padding).
func (x *rawReader) skipToHeader() (skipped int64, found, blank bool) {
	blank = true
	for {
		if x.n-x.pos < 3 && !x.more() && x.n-x.pos < 3 {
			for _, c := range x.buf[x.pos:x.n] {
				blank = blank && (c == 0 || c == ' ' || c == '\n' || c == '\r' || c == '\t')
			}
			skipped += int64(x.n - x.pos)
			x.pos = x.n
			return skipped, false, blank
		}
		if x.n-x.pos < 3 {
			continue
		}
		w := x.buf[x.pos:x.n]
		k := bytes.Index(w, gzipHeader)
		upto := k
		if k < 0 {
			upto = len(w) - 2 // the last two bytes may start a header
		}
		for _, c := range w[:upto] {
			blank = blank && (c == 0 || c == ' ' || c == '\n' || c == '\r' || c == '\t')
		}
		skipped += int64(upto)
		x.pos += upto
		x.keep = x.pos
		if k >= 0 {
			return skipped, true, blank
		}
	}
}

// Members reads the decompressed content of concatenated gzip members,
// skipping damaged members and non-gzip bytes between them: each is reported
// to the bad callback once with its member index and input offset, and
// reading resumes at the next gzip header. There is no size cap: callers cap
// each document they cut from the stream.
type Members struct {
	raw      rawReader
	zr       gzip.Reader
	inMember bool
	member   int   // members started so far
	start    int64 // input offset of the current member
	bad      func(*DecodeError)
}

// NewMembers returns a reader of the gzip members of r. bad may be nil.
func NewMembers(r io.Reader, bad func(*DecodeError)) *Members {
	return &Members{raw: rawReader{r: r}, bad: bad}
}

// Member returns the 1-based index of the member being read and its input offset.
func (m *Members) Member() (int, int64) { return m.member, m.start }

func (m *Members) report(e *DecodeError, member int, off int64) {
	e.Member, e.Offset, e.DocOffset = member, off, -1
	if m.bad != nil {
		m.bad(e)
	}
}

func (m *Members) Read(p []byte) (int, error) {
	for {
		if m.inMember {
			n, err := m.zr.Read(p)
			if err == io.EOF {
				m.inMember = false
				if n > 0 {
					return n, nil
				}
				continue
			}
			if err != nil {
				m.inMember = false
				m.report(decodeErr(ReasonGzip, "gzip member %d: %w", m.member, err), m.member, m.start)
				m.resync()
				return 0, ErrBreak
			}
			return n, nil
		}
		head, _ := m.raw.peek2()
		if len(head) == 0 {
			return 0, m.rawEOF()
		}
		if !IsGzip(head) {
			at := m.raw.offset()
			skipped, found, blank := m.raw.skipToHeader()
			if !blank {
				e := decodeErr(ReasonGzip, "%d bytes after gzip member %d are not gzip data", skipped, m.member)
				if m.member == 0 {
					e = decodeErr(ReasonGzip, "%d bytes before the first gzip member are not gzip data", skipped)
				}
				m.report(e, m.member+1, at)
				return 0, ErrBreak
			}
			if !found {
				return 0, m.rawEOF()
			}
		}
		m.member++
		m.start = m.raw.offset()
		m.raw.keep = m.raw.pos
		if err := m.zr.Reset(&m.raw); err != nil {
			m.report(decodeErr(ReasonGzip, "read gzip member %d header: %w", m.member, err), m.member, m.start)
			m.resync()
			return 0, ErrBreak
		}
		m.zr.Multistream(false)
		m.inMember = true
	}
}

func (m *Members) rawEOF() error {
	if err := m.raw.err; err != nil && err != io.EOF {
		return fmt.Errorf("read gzip input: %w", err)
	}
	return io.EOF
}

// resync goes back to just after the bad member's start (if still buffered)
// and on to the next gzip header.
func (m *Members) resync() {
	if back := int(m.start - m.raw.base); back >= 0 && back < m.raw.n {
		m.raw.pos = back + 1
	}
	m.raw.keep = m.raw.pos
	if _, found, _ := m.raw.skipToHeader(); !found {
		m.raw.pos = m.raw.n
	}
}

// Values cuts a stream of JSON objects (concatenated, one per line or
// pretty-printed) into one object at a time, each at most max bytes. A
// malformed or oversized value, or bytes that are no object, are reported to
// the bad callback once with their offset, and reading resumes at the next
// plausible object start: a '{' at the start of a line, right after a '}', or
// opening the same first key as the stream's first good object. Every value
// returned is well-formed (strictly checked) JSON.
type Values struct {
	r        io.Reader
	members  *Members // when the input is gzip, for positions
	max      int
	buf      []byte
	start    int // buf[start:end] is unread
	end      int
	base     int64 // stream offset of buf[0]
	eof      bool
	err      error
	firstKey []byte // `{"key"` of the first good value
	bad      func(*DecodeError)
	// quiet: a bad span was reported and resync is looking for the next good
	// object; a candidate that fails too is part of the same span.
	quiet bool
}

// NewValues reads objects from r (decompressed data; m, if not nil, is the
// Members reader under r, for positions). bad may be nil.
func NewValues(r io.Reader, m *Members, max int64, bad func(*DecodeError)) *Values {
	if max <= 0 {
		max = DefaultMaxDecompressedBytes
	}
	return &Values{r: r, members: m, max: int(min(max, 1<<40)), bad: bad}
}

// Offset returns the stream offset of the next unread byte.
func (v *Values) Offset() int64 { return v.base + int64(v.start) }

func (v *Values) report(e *DecodeError, at int) {
	if v.quiet {
		return
	}
	v.quiet = true
	e.Offset, e.DocOffset = v.base+int64(at), -1
	if v.members != nil {
		e.Member, e.Offset = v.members.Member()
		e.DocOffset = v.base + int64(at)
	}
	if v.bad != nil {
		v.bad(e)
	}
}

// read appends more input; false at the end of the stream. broke: a damaged
// gzip stretch was skipped there (and reported by the Members reader).
func (v *Values) read() (more, broke bool) {
	if v.eof {
		return false, false
	}
	if v.start > 0 && (v.start == v.end || v.start > len(v.buf)/2) {
		copy(v.buf, v.buf[v.start:v.end])
		v.base += int64(v.start)
		v.end -= v.start
		v.start = 0
	}
	if v.end == len(v.buf) {
		nb := make([]byte, max(2*len(v.buf), 64<<10))
		copy(nb, v.buf[:v.end])
		v.buf = nb
	}
	n, err := v.r.Read(v.buf[v.end:])
	v.end += n
	switch {
	case errors.Is(err, ErrBreak):
		// What follows comes from the next good member: start it on a line
		// of its own, so resync can find a document at its start.
		if v.end == len(v.buf) {
			nb := make([]byte, len(v.buf)+1)
			copy(nb, v.buf)
			v.buf = nb
		}
		v.buf[v.end] = '\n'
		v.end++
		v.quiet = false // the damage was reported by the Members reader
		return true, true
	case err == io.EOF:
		v.eof = true
	case err != nil:
		v.eof, v.err = true, err
	}
	return n > 0 || !v.eof, false
}

// readDouble reads until the unread data has doubled (or the input ends),
// so rescanning an incomplete value from its start stays linear overall.
func (v *Values) readDouble() (more, broke bool) {
	want := 2*(v.end-v.start) + 4096
	got := false
	for v.end-v.start < want {
		more, broke := v.read()
		if broke {
			return true, true
		}
		if !more {
			return got, false
		}
		got = true
	}
	return true, false
}

// Next returns the next object, valid until the next call, or io.EOF at the
// end (or the input's read error).
func (v *Values) Next() ([]byte, error) {
	for {
		// Skip whitespace and a BOM.
		for {
			for v.start < v.end && isBlank(v.buf[v.start]) {
				v.start++
			}
			if v.end-v.start >= 3 && v.buf[v.start] == 0xEF && v.buf[v.start+1] == 0xBB && v.buf[v.start+2] == 0xBF {
				v.start += 3
				continue
			}
			if v.start < v.end {
				break
			}
			if more, _ := v.read(); !more {
				if v.err != nil {
					return nil, v.err
				}
				return nil, io.EOF
			}
		}
		if v.buf[v.start] != '{' {
			e := decodeErr(ReasonJSON, "found %q where a JSON object should start", v.buf[v.start])
			v.report(e, v.start)
			v.resync(v.start + 1)
			continue
		}
		// Strictly check the value, reading more while it is incomplete.
		for {
			n, err := scanObject(v.buf[v.start:v.end])
			if err == nil && n > v.max {
				err = errIncomplete // over the cap either way
			}
			if err == nil {
				val := v.buf[v.start : v.start+n]
				v.start += n
				v.quiet = false
				if v.firstKey == nil {
					v.firstKey = firstKeyOf(val)
				}
				return val, nil
			}
			if errors.Is(err, errIncomplete) {
				if v.end-v.start > v.max {
					at := v.start
					v.report(&DecodeError{Reason: ReasonTooLarge, Err: fmt.Errorf("document larger than %d bytes: %w (raise %s.max_decompressed_bytes if documents are legitimately this large)",
						v.max, ErrTooLarge, ConfigPath)}, at)
					v.resync(v.start + 1)
					break
				}
				more, broke := v.readDouble()
				if broke {
					// The value is cut by the damaged member (reported
					// there): look for the next document from its start on.
					v.quiet = true
					v.resync(v.start + 1)
					v.quiet = false
					break
				}
				if !more {
					at := v.start
					v.report(decodeErr(ReasonJSON, "document cut short (%d bytes to the end of the input)", v.end-v.start), at)
					// A document it ran into may still be whole.
					v.resync(v.start + 1)
					break
				}
				continue
			}
			at := v.start
			v.report(decodeErr(ReasonJSON, "%w", err), at)
			v.resync(v.start + 1)
			break
		}
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// firstKeyOf returns `{"key"` of a compact object, or an empty non-nil slice.
func firstKeyOf(val []byte) []byte {
	if len(val) > 2 && val[1] == '"' {
		if k := bytes.IndexByte(val[2:], '"'); k >= 0 && k < 64 {
			return bytes.Clone(val[:k+3])
		}
	}
	return []byte{}
}

// resync moves v.start to the next plausible object start at or after
// buf[from] (or to the end of the input).
func (v *Values) resync(from int) {
	lineStart, prev := false, byte(0)
	for _, c := range v.buf[v.start:from] {
		if c == '\n' {
			lineStart = true
		} else if !isBlank(c) {
			lineStart, prev = false, c
		}
	}
	j := from
	for {
		for ; j < v.end; j++ {
			c := v.buf[j]
			if c == '{' && v.candidate(j, lineStart || prev == '}') {
				v.start = j
				return
			}
			if c == '\n' {
				lineStart = true
			} else if !isBlank(c) {
				lineStart, prev = false, c
			}
		}
		v.start = j
		more, _ := v.read()
		if !more {
			v.start = v.end
			return
		}
		j = v.start
	}
}

// candidate reports whether the '{' at buf[j] may start an object: after a
// line start or a '}', or opening the stream's first key; and followed by a
// key or '}' (a '{' in an escaped message is followed by a backslash).
func (v *Values) candidate(j int, boundary bool) bool {
	if !boundary && !v.startsKnown(j) {
		return false
	}
	k := j + 1
	for k < v.end && isBlank(v.buf[k]) {
		k++
	}
	return k >= v.end || v.buf[k] == '"' || v.buf[k] == '}'
}

// knownFirstKeys open the top-level objects of the shapes replay reads.
var knownFirstKeys = [][]byte{[]byte(`{"messageType"`), []byte(`{"awslogs"`), []byte(`{"Records"`),
	[]byte(`{"records"`), []byte(`{"requestId"`), []byte(`{"attemptsMade"`), []byte(`{"events"`), []byte(`{"version"`)}

func (v *Values) startsKnown(j int) bool {
	b := v.buf[j:v.end]
	if len(v.firstKey) > 0 && bytes.HasPrefix(b, v.firstKey) {
		return true
	}
	for _, k := range knownFirstKeys {
		if bytes.HasPrefix(b, k) {
			return true
		}
	}
	return false
}

// errIncomplete: the object continues past the bytes scanned.
var errIncomplete = errors.New("incomplete JSON value")

// scanObject strictly checks the object at b[0] and returns its length:
// structure, commas and colons, string escapes, no raw control characters
// in strings, literals spelled out. errIncomplete means b ends inside it.
func scanObject(b []byte) (int, error) {
	var stack [512]byte
	depth := 0
	i := 0
	// expectValue: a value must follow at i.
	expectValue := true
	for {
		if !expectValue && depth == 0 {
			return i, nil
		}
		i = skipBlank(b, i)
		if i >= len(b) {
			return i, errIncomplete
		}
		if expectValue {
			switch c := b[i]; {
			case c == '{' || c == '[':
				if depth == len(stack) {
					return i, fmt.Errorf("offset %d: nested too deeply", i)
				}
				stack[depth] = c
				depth++
				i = skipBlank(b, i+1)
				if i >= len(b) {
					return i, errIncomplete
				}
				if (c == '{' && b[i] == '}') || (c == '[' && b[i] == ']') {
					depth--
					i++
					expectValue = false
					break
				}
				if c == '{' {
					var err error
					if i, err = scanKey(b, i); err != nil {
						return i, err
					}
				}
				continue
			case c == '"':
				end, err := scanString(b, i)
				if err != nil {
					return end, err
				}
				i = end
			case c == 't' || c == 'f' || c == 'n':
				end, err := scanWord(b, i)
				if err != nil {
					return end, err
				}
				i = end
			case c == '-' || (c >= '0' && c <= '9'):
				end, err := scanNumber(b, i)
				if err != nil {
					return end, err
				}
				i = end
			default:
				return i, fmt.Errorf("offset %d: unexpected %q: %w", i, c, ErrSyntaxJSON)
			}
			expectValue = false
		}
		if depth == 0 {
			continue
		}
		i = skipBlank(b, i)
		if i >= len(b) {
			return i, errIncomplete
		}
		top := stack[depth-1]
		switch c := b[i]; {
		case c == ',':
			i = skipBlank(b, i+1)
			if top == '{' {
				var err error
				if i, err = scanKey(b, i); err != nil {
					return i, err
				}
			}
			expectValue = true
		case (top == '{' && c == '}') || (top == '[' && c == ']'):
			depth--
			i++
		default:
			return i, fmt.Errorf("offset %d: expected ',' or a closing bracket, found %q: %w", i, c, ErrSyntaxJSON)
		}
	}
}

// ErrSyntaxJSON is wrapped by strict-scan errors.
var ErrSyntaxJSON = errors.New("invalid JSON")

// scanNumber checks the JSON number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, error) {
	digits := func(j int) (int, bool) {
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		return k, k > j
	}
	bad := func(j int) (int, error) { return j, fmt.Errorf("offset %d: bad number: %w", j, ErrSyntaxJSON) }
	j := i
	if b[j] == '-' {
		j++
	}
	if j >= len(b) {
		return j, errIncomplete
	}
	switch {
	case b[j] == '0':
		j++
	case b[j] >= '1' && b[j] <= '9':
		j, _ = digits(j)
	default:
		return bad(j)
	}
	if j < len(b) && b[j] == '.' {
		var ok bool
		if j, ok = digits(j + 1); !ok {
			if j >= len(b) {
				return j, errIncomplete
			}
			return bad(j)
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		var ok bool
		if j, ok = digits(j); !ok {
			if j >= len(b) {
				return j, errIncomplete
			}
			return bad(j)
		}
	}
	if j >= len(b) {
		return j, errIncomplete // more digits may follow
	}
	return j, nil
}

func skipBlank(b []byte, i int) int {
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	return i
}

// scanKey checks `"key" :` at b[i] and returns the offset after the colon.
func scanKey(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, errIncomplete
	}
	if b[i] != '"' {
		return i, fmt.Errorf("offset %d: expected a key, found %q: %w", i, b[i], ErrSyntaxJSON)
	}
	end, err := scanString(b, i)
	if err != nil {
		return end, err
	}
	i = skipBlank(b, end)
	if i >= len(b) {
		return i, errIncomplete
	}
	if b[i] != ':' {
		return i, fmt.Errorf("offset %d: expected ':', found %q: %w", i, b[i], ErrSyntaxJSON)
	}
	return i + 1, nil
}

func scanWord(b []byte, i int) (int, error) {
	var w string
	switch b[i] {
	case 't':
		w = "true"
	case 'f':
		w = "false"
	default:
		w = "null"
	}
	for k := 0; k < len(w); k++ {
		if i+k >= len(b) {
			return i + k, errIncomplete
		}
		if b[i+k] != w[k] {
			return i, fmt.Errorf("offset %d: bad literal: %w", i, ErrSyntaxJSON)
		}
	}
	return i + len(w), nil
}

// scanString checks the string at b[i] (its opening quote) and returns the
// offset past its closing quote.
func scanString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		// Fast skip of plain bytes, eight at a time: the lowest flagged
		// byte of a word is a real quote, backslash or control byte.
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			q, bs := x^(lsb*'"'), x^(lsb*'\\')
			m := ((q-lsb)&^q | (bs-lsb)&^bs | (x-lsb*0x20)&^x) & msb
			if m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		for j < len(b) && !strSpecial[b[j]] {
			j++
		}
		if j >= len(b) {
			return j, errIncomplete
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			if j+1 >= len(b) {
				return j, errIncomplete
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return j, errIncomplete
				}
				for _, h := range b[j+2 : j+6] {
					if hexVal(h) < 0 {
						return j, fmt.Errorf("offset %d: bad \\u escape: %w", j, ErrSyntaxJSON)
					}
				}
				j += 6
			default:
				return j, fmt.Errorf("offset %d: bad escape: %w", j, ErrSyntaxJSON)
			}
		default:
			return j, fmt.Errorf("offset %d: control character %#x in a string: %w", j, c, ErrSyntaxJSON)
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// IsDocument reports whether val, one JSON object, opens with or holds a
// top-level "messageType" key: a CloudWatch Logs subscription document (the
// Decoder judges the rest).
func IsDocument(val []byte) bool {
	i := skipBlank(val, 0)
	return i < len(val) && val[i] == '{' && hasMessageType(val, i)
}
