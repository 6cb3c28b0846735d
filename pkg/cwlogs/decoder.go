package cwlogs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/wallarm/apigw-connector/internal/jsonscan"
)

const (
	messageTypeData    = "DATA_MESSAGE"
	messageTypeControl = "CONTROL_MESSAGE"

	// minBuf is the smallest decompression buffer; maxPooledBuf is the largest
	// one kept for reuse, so one huge record does not pin memory forever.
	minBuf       = 32 << 10
	maxPooledBuf = 8 << 20
	// maxRatioHint bounds how far the gzip trailer's size field is trusted
	// when presizing the buffer (it is attacker-controlled).
	maxRatioHint = 32
)

// Decoder decodes CloudWatch Logs subscription records. It is safe for
// concurrent use; per-call state (gzip reader, buffers) is pooled.
type Decoder struct {
	max    int64
	gzPool sync.Pool // *gzip.Reader
	stPool sync.Pool // *state
}

// NewDecoder returns a decoder with options o (zero values take defaults).
func NewDecoder(o Options) *Decoder {
	if o.MaxDecompressedBytes <= 0 {
		o.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	return &Decoder{max: o.MaxDecompressedBytes}
}

// state is the per-call scratch, reused across calls.
type state struct {
	buf  []byte // decompressed member
	msg  []byte // unescaped message
	tmp  []byte // unescaped short strings (keys, meta)
	id   []byte // the event's id
	br   bytes.Reader
	meta Meta
	ev   Event
	// Last meta strings seen: consecutive documents usually repeat them, so
	// they are reused instead of allocated again.
	lastOwner, lastGroup, lastStream string
	lastFilters                      []string
}

func (d *Decoder) getState() *state {
	if st, ok := d.stPool.Get().(*state); ok {
		return st
	}
	return &state{}
}

func (d *Decoder) putState(st *state) {
	if cap(st.buf) > maxPooledBuf {
		st.buf = nil
	}
	if cap(st.msg) > maxPooledBuf {
		st.msg = nil
	}
	st.br.Reset(nil)
	st.meta = Meta{}
	st.ev = Event{}
	d.stPool.Put(st)
}

// Decode decodes one record and calls fn for every log event of its
// DATA_MESSAGE documents or message lines, in order. meta and ev (and
// ev.Message) are valid only during the callback. A bad document or gzip
// member does not stop the record: it is skipped and the rest decoded (see
// DecodeEach). The error is the first *DecodeError, nil when none.
func (d *Decoder) Decode(data []byte, fn func(meta *Meta, ev *Event)) (Stats, error) {
	var first *DecodeError
	stats := d.DecodeEach(data, fn, func(e *DecodeError) {
		if first == nil {
			first = e
		}
	})
	if first == nil {
		return stats, nil
	}
	return stats, first
}

// DecodeEach decodes one record as Decode does and calls bad once for every
// document, gzip member or span it skips, with its reason and position.
// Documents are the unit of failure: decoding resynchronises at the next
// gzip header (1f 8b 08) after a corrupt member and at the next document
// start ('{' opening an object with a top-level "messageType") after a
// malformed document, so every document before and after a bad one is
// decoded. Events of a malformed document that precede the damage are
// emitted; no event is emitted twice.
func (d *Decoder) DecodeEach(data []byte, fn func(meta *Meta, ev *Event), bad func(*DecodeError)) Stats {
	var stats Stats
	st := d.getState()
	defer d.putState(st)
	// Gzip data may start with damage: text never holds the gzip header
	// (0x8b is not a UTF-8 lead byte), so its presence means gzip.
	if IsGzip(data) || nextGzipHeader(data, 0) >= 0 {
		d.decodeGzip(st, data, fn, bad, &stats)
		return stats
	}
	i := jsonscan.SkipSpace(data, jsonscan.SkipBOM(data, 0))
	if i == len(data) {
		st.report(&stats, bad, decodeErr(ReasonEmpty, "record is empty"), 0, -1, -1)
		return stats
	}
	if isDocuments(data, i) {
		st.decodeDocs(data[i:], fn, bad, &stats, 0, i)
		return stats
	}
	st.decodeLines(data[i:], fn, &stats)
	if stats.Events == 0 {
		st.report(&stats, bad, decodeErr(ReasonEmpty, "record holds only blank lines"), 0, -1, -1)
	}
	return stats
}

// isDocuments tells envelope documents from message lines in plain data
// whose first non-space byte is at i. A record starting with an envelope is
// documents; so is one that holds an envelope further on (a bad first
// document must not turn the rest into "lines").
func isDocuments(data []byte, i int) bool {
	if data[i] == '{' && hasMessageType(data, i) {
		return true
	}
	// A fast search first: message lines practically never hold the key.
	return bytes.Contains(data[i:], messageTypeKey) && nextDocStart(data, i+1) >= 0
}

var messageTypeKey = []byte(`"messageType"`)

// nextDocStart returns the offset of the first '{' at or after from that
// opens an object with a top-level "messageType" key, or -1. Inside a JSON
// string a quote is escaped, so a '{' in a message never qualifies.
func nextDocStart(b []byte, from int) int {
	for from < len(b) {
		k := bytes.IndexByte(b[from:], '{')
		if k < 0 {
			return -1
		}
		from += k
		if hasMessageType(b, from) {
			return from
		}
		from++
	}
	return -1
}

// report counts e, fills in its position and hands it to the bad callback.
// bad is passed down, not kept in st, so that it does not escape: a caller's
// closure then costs no allocation.
func (st *state) report(stats *Stats, bad func(*DecodeError), e *DecodeError, member int, offset, docOffset int) {
	e.Member, e.Offset, e.DocOffset = member, int64(offset), int64(docOffset)
	stats.Errors++
	if bad != nil {
		bad(e)
	}
}

var gzipHeader = []byte{0x1f, 0x8b, 0x08}

// nextGzipHeader returns the offset of the next gzip member header (magic
// and deflate method) at or after from, or -1.
func nextGzipHeader(data []byte, from int) int {
	if from >= len(data) {
		return -1
	}
	k := bytes.Index(data[from:], gzipHeader)
	if k < 0 {
		return -1
	}
	return from + k
}

func allSpace(b []byte) bool {
	for _, c := range b {
		if !jsonscan.IsSpace(c) && c != 0 {
			return false
		}
	}
	return true
}

func (d *Decoder) decodeGzip(st *state, data []byte, fn func(*Meta, *Event), bad func(*DecodeError), stats *Stats) {
	zr, _ := d.gzPool.Get().(*gzip.Reader)
	if zr == nil {
		zr = new(gzip.Reader)
	}
	defer d.gzPool.Put(zr)

	// Presize from the trailer's ISIZE (size mod 2^32 of the last member),
	// trusted only up to a plausible compression ratio.
	hint := 0
	if len(data) >= 18 {
		isize := int64(binary.LittleEndian.Uint32(data[len(data)-4:]))
		if isize <= int64(len(data))*maxRatioHint && isize <= d.max {
			hint = int(isize) + 1 // +1: room to see EOF without growing
		}
	}

	pos, member := 0, 0
	for pos < len(data) {
		if !IsGzip(data[pos:]) {
			// Trailing newlines or NUL padding (files, S3 objects) are not data.
			if allSpace(data[pos:]) {
				break
			}
			next := nextGzipHeader(data, pos+1)
			span := len(data) - pos
			if next >= 0 {
				span = next - pos
			}
			e := decodeErr(ReasonGzip, "%d bytes after gzip member %d are not gzip data", span, member)
			if member == 0 {
				e = decodeErr(ReasonGzip, "%d bytes before the first gzip member are not gzip data", span)
			}
			st.report(stats, bad, e, member+1, pos, -1)
			if next < 0 {
				break
			}
			pos = next
			continue
		}
		member++
		// A bytes.Reader is an io.ByteReader, so gzip does not read ahead past
		// the member: each member is read, and its CRC checked, on its own.
		st.br.Reset(data[pos:])
		err := zr.Reset(&st.br)
		var buf []byte
		if err == nil {
			zr.Multistream(false)
			buf, err = readCapped(zr, st.buf[:0], d.max, hint)
			st.buf = buf
		}
		if err != nil {
			var e *DecodeError
			switch {
			case errors.Is(err, ErrTooLarge):
				e = &DecodeError{Reason: ReasonTooLarge, Err: fmt.Errorf("gzip member %d: %w of %d bytes", member, ErrTooLarge, d.max)}
			default:
				e = decodeErr(ReasonGzip, "gzip member %d: %w", member, err)
			}
			st.report(stats, bad, e, member, pos, -1)
			// The member's end is unknown (a truncated member reads on into
			// the next one): resume at the next header after its start. A
			// false header inside the bad member fails on its own.
			next := nextGzipHeader(data, pos+1)
			if next < 0 {
				break
			}
			pos = next
			continue
		}
		consumed := len(data) - pos - st.br.Len()
		st.decodeDocs(buf, fn, bad, stats, member, pos)
		pos += consumed
	}
	if stats.Documents == 0 && stats.Errors == 0 {
		st.report(stats, bad, decodeErr(ReasonEmpty, "gzip data holds no document"), 0, -1, -1)
	}
}

// readCapped reads r to EOF into buf, failing with ErrTooLarge once more than
// limit bytes arrive. No buffer is larger than limit+1 bytes; growing 4x at a
// time keeps the garbage of a bomb's growth under two thirds of the cap.
func readCapped(r io.Reader, buf []byte, limit int64, hint int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, ErrTooLarge
			}
			n := max(4*cap(buf), hint, minBuf)
			if int64(n) >= limit {
				n = int(limit + 1)
			}
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, ErrTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// hasMessageType reports whether the object starting at b[i] has a top-level
// "messageType" key before it ends (or stops parsing).
func hasMessageType(b []byte, i int) bool {
	i++
	for {
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end, _, err := jsonscan.String(b, i)
		if err != nil {
			return false
		}
		if string(b[i+1:end-1]) == "messageType" {
			return true
		}
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		if i, err = jsonscan.Skip(b, i+1); err != nil {
			return false
		}
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return false
		}
		i++
	}
}

// decodeLines emits every non-blank line of b as an event with empty meta.
func (st *state) decodeLines(b []byte, fn func(*Meta, *Event), stats *Stats) {
	st.meta = Meta{}
	for len(b) > 0 {
		line := b
		if nl := bytes.IndexByte(b, '\n'); nl >= 0 {
			line, b = b[:nl], b[nl+1:]
		} else {
			b = nil
		}
		line = trimSpace(line)
		if len(line) == 0 {
			continue
		}
		st.ev = Event{Message: line}
		fn(&st.meta, &st.ev)
		stats.Events++
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && jsonscan.IsSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && jsonscan.IsSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// decodeDocs decodes the envelope documents of b, back to back. member and
// base locate b: its gzip member (0 for plain data) and the offset in the
// record of the member (or of b itself for plain data).
func (st *state) decodeDocs(b []byte, fn func(*Meta, *Event), bad func(*DecodeError), stats *Stats, member, base int) {
	at := func(i int) (int, int) { // record offset, decompressed offset
		if member > 0 {
			return base, i
		}
		return base + i, -1
	}
	if member > 0 {
		i := jsonscan.SkipSpace(b, jsonscan.SkipBOM(b, 0))
		if i < len(b) && !isDocuments(b, i) {
			// One error for the member, not one per line of it.
			off, doff := at(i)
			st.report(stats, bad, decodeErr(ReasonJSON, "gzip member %d holds no CloudWatch Logs subscription document", member), member, off, doff)
			return
		}
	}
	i := jsonscan.SkipBOM(b, 0)
	for {
		i = jsonscan.SkipSpace(b, i)
		if i >= len(b) {
			return
		}
		if b[i] != '{' {
			next := nextDocStart(b, i+1)
			span := len(b) - i
			if next >= 0 {
				span = next - i
			}
			off, doff := at(i)
			st.report(stats, bad, decodeErr(ReasonJSON, "document %d: expected '{', found %q (%d bytes skipped)", stats.Documents+stats.Errors+1, b[i], span), member, off, doff)
			if next < 0 {
				return
			}
			i = next
			continue
		}
		n := stats.Documents + stats.Errors + 1
		end, err := st.decodeDoc(b, i, fn, stats)
		if err == nil {
			i = end
			continue
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			de = &DecodeError{Reason: ReasonJSON, Err: fmt.Errorf("document %d: %w", n, err)}
		}
		off, doff := at(i)
		st.report(stats, bad, de, member, off, doff)
		if de.Reason == ReasonUnknownMessageType || errors.Is(de, errNoMessageType) {
			// The object was read whole: go on right after it.
			i = end
			continue
		}
		// Malformed: its end is unknown. Resume at the next document start
		// after its beginning, so a document it ran into is not lost.
		next := nextDocStart(b, i+1)
		if next < 0 {
			return
		}
		i = next
	}
}

// errNoMessageType marks a well-formed object that is not a subscription document.
var errNoMessageType = errors.New("not a CloudWatch Logs subscription document")

// syntaxErr locates a scanner error.
func syntaxErr(err error, at int) error { return fmt.Errorf("offset %d: %w", at, err) }

func expected(b []byte, at int, what string) error {
	if at >= len(b) {
		return fmt.Errorf("offset %d: expected %s: %w", at, what, jsonscan.ErrUnexpectedEnd)
	}
	return fmt.Errorf("offset %d: expected %s, found %q: %w", at, what, b[at], jsonscan.ErrSyntax)
}

// Bits of the envelope keys seen, so events can be emitted in the same pass
// when the envelope fields precede logEvents (as CloudWatch Logs writes them).
const (
	seenType = 1 << iota
	seenOwner
	seenGroup
	seenStream
	seenFilters
	seenAll = seenType | seenOwner | seenGroup | seenStream | seenFilters
)

// decodeDoc decodes the object at b[i] and returns the offset past it.
func (st *state) decodeDoc(b []byte, i int, fn func(*Meta, *Event), stats *Stats) (int, error) {
	st.meta = Meta{}
	seen := 0
	var unknown *DecodeError
	eventsAt := -1 // offset of a logEvents value deferred until the envelope is known
	emitted := false
	i++
	first := true
	for {
		i = jsonscan.SkipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			i++
			break
		}
		if !first {
			if i >= len(b) || b[i] != ',' {
				return i, expected(b, i, "',' or '}'")
			}
			i = jsonscan.SkipSpace(b, i+1)
		}
		first = false
		key, next, err := st.key(b, i)
		if err != nil {
			return i, err
		}
		i = next
		switch string(key) {
		case "messageType":
			v, next, err := st.str(b, i)
			if err != nil {
				return next, err
			}
			i = next
			switch string(v) {
			case messageTypeData:
				st.meta.MessageType = messageTypeData
			case messageTypeControl:
				st.meta.MessageType = messageTypeControl
			default:
				// Read the rest of the object (its events are skipped) so
				// decoding goes on exactly after it.
				if unknown == nil {
					unknown = decodeErr(ReasonUnknownMessageType, "document %d: unknown messageType %q (want %s or %s)",
						stats.Documents+stats.Errors+1, truncate(v, 64), messageTypeData, messageTypeControl)
				}
				st.meta.MessageType = ""
			}
			seen |= seenType
		case "owner":
			if st.meta.Owner, i, err = st.metaStr(b, i, &st.lastOwner); err != nil {
				return i, err
			}
			seen |= seenOwner
		case "logGroup":
			if st.meta.LogGroup, i, err = st.metaStr(b, i, &st.lastGroup); err != nil {
				return i, err
			}
			seen |= seenGroup
		case "logStream":
			if st.meta.LogStream, i, err = st.metaStr(b, i, &st.lastStream); err != nil {
				return i, err
			}
			seen |= seenStream
		case "subscriptionFilters":
			next, err := st.filters(b, i)
			if err != nil {
				return next, err
			}
			i = next
			seen |= seenFilters
		case "logEvents":
			if seen == seenAll && unknown == nil {
				next, err := st.events(b, i, fn, stats)
				if err != nil {
					return next, err
				}
				i = next
				emitted = true
				break
			}
			eventsAt = i
			if i, err = jsonscan.Skip(b, i); err != nil {
				return i, syntaxErr(err, i)
			}
		default:
			if i, err = jsonscan.Skip(b, i); err != nil {
				return i, syntaxErr(err, i)
			}
		}
	}
	if unknown != nil {
		return i, unknown
	}
	if seen&seenType == 0 {
		return i, &DecodeError{Reason: ReasonJSON, Err: fmt.Errorf("document %d has no messageType: %w", stats.Documents+stats.Errors+1, errNoMessageType)}
	}
	if eventsAt >= 0 && !emitted {
		if _, err := st.events(b, eventsAt, fn, stats); err != nil {
			return i, err
		}
	}
	stats.Documents++
	if st.meta.MessageType == messageTypeControl {
		stats.ControlMessages++
	}
	return i, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// reuse returns *last when v equals it, else a new string remembered in *last.
func reuse(last *string, v []byte) string {
	if string(v) != *last { // no allocation for the comparison
		*last = string(v)
	}
	return *last
}

// key reads `"key" :` at b[i] and returns the (unescaped) key and the offset
// of the value.
func (st *state) key(b []byte, i int) ([]byte, int, error) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, expected(b, i, "a key")
	}
	key, end, err := st.quoted(b, i)
	if err != nil {
		return nil, end, err
	}
	i = jsonscan.SkipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return nil, i, expected(b, i, "':'")
	}
	return key, jsonscan.SkipSpace(b, i+1), nil
}

// str reads a string (or null, as empty) value at b[i]. The result may alias
// st.tmp: use it before the next call.
func (st *state) str(b []byte, i int) ([]byte, int, error) {
	if i < len(b) && b[i] == '"' {
		return st.quoted(b, i)
	}
	if isNull(b, i) {
		return nil, i + 4, nil
	}
	return nil, i, expected(b, i, "a string")
}

// quoted reads the string whose opening quote is at b[i] and returns its
// unescaped body (which may alias st.tmp) and the offset past it.
func (st *state) quoted(b []byte, i int) ([]byte, int, error) {
	end, esc, err := jsonscan.String(b, i)
	if err != nil {
		return nil, end, syntaxErr(err, i)
	}
	v := b[i+1 : end-1]
	if esc {
		if st.tmp, err = jsonscan.AppendUnescaped(st.tmp[:0], v); err != nil {
			return nil, i, syntaxErr(err, i)
		}
		v = st.tmp
	}
	return v, end, nil
}

// metaStr reads a string value at b[i] as str does, reusing *last when the
// value repeats.
func (st *state) metaStr(b []byte, i int, last *string) (string, int, error) {
	v, next, err := st.str(b, i)
	if err != nil {
		return "", next, err
	}
	return reuse(last, v), next, nil
}

func isNull(b []byte, i int) bool {
	return len(b)-i >= 4 && string(b[i:i+4]) == "null"
}

// filters reads the subscriptionFilters array.
func (st *state) filters(b []byte, i int) (int, error) {
	if isNull(b, i) {
		return i + 4, nil
	}
	if i >= len(b) || b[i] != '[' {
		return i, expected(b, i, "'['")
	}
	i = jsonscan.SkipSpace(b, i+1)
	n := 0
	same := true // identical to lastFilters so far
	var fresh []string
	for i < len(b) && b[i] != ']' {
		if n > 0 {
			if b[i] != ',' {
				return i, expected(b, i, "',' or ']'")
			}
			i = jsonscan.SkipSpace(b, i+1)
		}
		v, next, err := st.str(b, i)
		if err != nil {
			return next, err
		}
		i = jsonscan.SkipSpace(b, next)
		if same && n < len(st.lastFilters) && st.lastFilters[n] == string(v) {
			n++
			continue
		}
		if same {
			same = false
			fresh = append(fresh, st.lastFilters[:n]...)
		}
		fresh = append(fresh, string(v))
		n++
	}
	if i >= len(b) {
		return i, expected(b, i, "']'")
	}
	if same && n == len(st.lastFilters) {
		st.meta.SubscriptionFilters = st.lastFilters
	} else {
		if same {
			fresh = append(fresh, st.lastFilters[:n]...)
		}
		st.lastFilters = fresh
		st.meta.SubscriptionFilters = fresh
	}
	return i + 1, nil
}

// events reads the logEvents array at b[i], calling fn for each event of a
// DATA_MESSAGE (a CONTROL_MESSAGE's events are skipped).
func (st *state) events(b []byte, i int, fn func(*Meta, *Event), stats *Stats) (int, error) {
	if st.meta.MessageType != messageTypeData {
		end, err := jsonscan.Skip(b, i)
		if err != nil {
			return end, syntaxErr(err, i)
		}
		return end, nil
	}
	if isNull(b, i) {
		return i + 4, nil
	}
	if i >= len(b) || b[i] != '[' {
		return i, expected(b, i, "'['")
	}
	i = jsonscan.SkipSpace(b, i+1)
	n := 0
	for i < len(b) && b[i] != ']' {
		if n > 0 {
			if b[i] != ',' {
				return i, expected(b, i, "',' or ']'")
			}
			i = jsonscan.SkipSpace(b, i+1)
		}
		next, err := st.event(b, i)
		if err != nil {
			return next, err
		}
		fn(&st.meta, &st.ev)
		stats.Events++
		n++
		i = jsonscan.SkipSpace(b, next)
	}
	if i >= len(b) {
		return i, expected(b, i, "']'")
	}
	return i + 1, nil
}

// event reads one {"id","timestamp","message"} object into st.ev.
func (st *state) event(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return i, expected(b, i, "'{'")
	}
	st.ev = Event{}
	start := i
	i = jsonscan.SkipSpace(b, i+1)
	first, hasMsg := true, false
	for {
		if i < len(b) && b[i] == '}' {
			if !hasMsg {
				// CloudWatch Logs always writes one: this object is not an
				// event (e.g. what a truncated document ran into).
				return start, fmt.Errorf("offset %d: event has no message: %w", start, jsonscan.ErrSyntax)
			}
			return i + 1, nil
		}
		if !first {
			if i >= len(b) || b[i] != ',' {
				return i, expected(b, i, "',' or '}'")
			}
			i = jsonscan.SkipSpace(b, i+1)
		}
		first = false
		key, next, err := st.key(b, i)
		if err != nil {
			return next, err
		}
		i = next
		switch string(key) {
		case "messageType", "logEvents":
			// An event never has these keys: this is the next document,
			// run into because the current one was cut short.
			return i, fmt.Errorf("offset %d: event has a %q key: the document is truncated: %w", i, key, jsonscan.ErrSyntax)
		case "message":
			hasMsg = true
			if i < len(b) && b[i] == '"' {
				// Unescape in the same pass as the scan; the common
				// access-log message is escaped JSON.
				st.msg, i, err = jsonscan.AppendString(st.msg[:0], b, i)
				if err != nil {
					return i, syntaxErr(err, i)
				}
				st.ev.Message = st.msg
			} else if isNull(b, i) {
				i += 4
			} else {
				return i, expected(b, i, "a string message")
			}
		case "id":
			v, next, err := st.str(b, i)
			if err != nil {
				return next, err
			}
			i = next
			st.id = append(st.id[:0], v...) // v may alias tmp, which a later key reuses
			st.ev.ID = st.id
		case "timestamp":
			start := i
			if i < len(b) && b[i] == '"' { // tolerate a quoted number
				end, _, err := jsonscan.String(b, i)
				if err != nil {
					return end, syntaxErr(err, i)
				}
				i = end
				start++
				if ts, ok := jsonscan.Int(b[start : end-1]); ok {
					st.ev.Timestamp = ts
				}
			} else {
				i = jsonscan.Literal(b, i)
				if ts, ok := jsonscan.Int(b[start:i]); ok {
					st.ev.Timestamp = ts
				} else if !isNull(b, start) {
					return start, expected(b, start, "a number timestamp")
				}
			}
		default:
			if i, err = jsonscan.Skip(b, i); err != nil {
				return i, syntaxErr(err, i)
			}
		}
		i = jsonscan.SkipSpace(b, i)
	}
}
