// Package jsonscan is a small zero-copy JSON scanner for the hot path: it walks
// bytes in place, reports spans instead of building values, and unescapes a
// string only when the caller asks for it. It is deliberately tolerant where
// strictness would cost time and buy nothing (literals are not spelled out,
// control characters inside strings are accepted), and strict where a mistake
// could make a caller read past a value (unterminated strings, unbalanced
// containers, depth).
package jsonscan

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth bounds nesting in skipped values, so hostile input cannot make Skip
// spin through megabytes of brackets for nothing useful.
const MaxDepth = 512

// Errors returned by the scanner. Callers wrap them with the offset.
var (
	ErrUnexpectedEnd = errors.New("unexpected end of JSON input")
	ErrSyntax        = errors.New("invalid JSON syntax")
	ErrTooDeep       = errors.New("JSON nested too deeply")
)

// space marks the four JSON whitespace bytes.
var space = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// IsSpace reports whether c is JSON whitespace.
func IsSpace(c byte) bool { return space[c] }

// SkipSpace returns the index of the first non-whitespace byte at or after i.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && space[b[i]] {
		i++
	}
	return i
}

// SkipBOM returns i advanced past a UTF-8 byte order mark at b[i:], if any.
func SkipBOM(b []byte, i int) int {
	if len(b)-i >= 3 && b[i] == 0xEF && b[i+1] == 0xBB && b[i+2] == 0xBF {
		return i + 3
	}
	return i
}

// String scans the JSON string whose opening quote is at b[i]. It returns the
// index just past the closing quote and whether the body contains escapes
// (body is b[i+1:end-1]).
func String(b []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	// Eight bytes at a time; an escape is stepped over without leaving the
	// fast loop (escaped JSON has one every few bytes).
	for j+8 <= len(b) {
		m := special(binary.LittleEndian.Uint64(b[j:]))
		if m == 0 {
			j += 8
			continue
		}
		j += bits.TrailingZeros64(m) >> 3
		if b[j] == '"' {
			return j + 1, escaped, nil
		}
		escaped = true
		j += 2
	}
	for j < len(b) {
		switch b[j] {
		case '"':
			return j + 1, escaped, nil
		case '\\':
			escaped = true
			j += 2
		default:
			j++
		}
	}
	return len(b), escaped, ErrUnexpectedEnd
}

const (
	lsb     = 0x0101010101010101
	msb     = 0x8080808080808080
	quotes  = '"' * lsb
	bslashs = '\\' * lsb
)

// special returns a mask whose lowest set bit is the high bit of the first
// byte of x (little-endian) that is a quote or a backslash; 0 if none. Bits
// above the first match may be spurious.
func special(x uint64) uint64 {
	q := x ^ quotes
	s := x ^ bslashs
	return ((q-lsb)&^q | (s-lsb)&^s) & msb
}

// hexVal maps a hex digit to its value, or 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	a, c, d, e := hexVal[b[0]], hexVal[b[1]], hexVal[b[2]], hexVal[b[3]]
	if a|c|d|e == 0xff {
		return 0, false
	}
	return rune(a)<<12 | rune(c)<<8 | rune(d)<<4 | rune(e), true
}

// AppendUnescaped appends the decoded form of a JSON string body (the bytes
// between the quotes) to dst. Invalid escapes are an error; a lone surrogate
// becomes U+FFFD as encoding/json does.
func AppendUnescaped(dst, body []byte) ([]byte, error) {
	start := 0
	i := 0
	for i < len(body) {
		if body[i] != '\\' {
			i++
			continue
		}
		dst = append(dst, body[start:i]...)
		if i+1 >= len(body) {
			return dst, ErrSyntax
		}
		if d, ok := simpleEscape(body[i+1]); ok {
			dst = append(dst, d)
			i += 2
		} else if body[i+1] == 'u' {
			r, n, ok := unicodeEscape(body[i:])
			if !ok {
				return dst, ErrSyntax
			}
			dst = utf8.AppendRune(dst, r)
			i += n
		} else {
			return dst, ErrSyntax
		}
		start = i
	}
	return append(dst, body[start:]...), nil
}

// AppendString scans the JSON string whose opening quote is at b[i] and appends
// its decoded body to dst in the same pass. It returns the index past the
// closing quote.
//
// Plain runs are moved a word at a time: each step stores eight bytes and
// advances by however many of them are plain, so short runs between escapes
// (escaped JSON is mostly short runs) cost no memmove call.
func AppendString(dst, b []byte, i int) ([]byte, int, error) {
	j := i + 1
	w := len(dst)
	out := dst[:cap(dst)]
	for {
		// Eight bytes at a time: store the word, then advance past its plain
		// prefix. Simple escapes (\" \\ \/, nearly all of escaped JSON) are
		// decoded without leaving the loop. (A 64-byte bitmask variant was
		// measured slower: without SIMD the masks cost more than they save.)
		for j+8 <= len(b) {
			if w+8 > len(out) {
				out = grow(out, w+8)
			}
			x := binary.LittleEndian.Uint64(b[j:])
			binary.LittleEndian.PutUint64(out[w:], x)
			m := special(x)
			if m == 0 {
				j += 8
				w += 8
				continue
			}
			k := bits.TrailingZeros64(m) >> 3
			j += k
			w += k
			if b[j] == '"' {
				return out[:w], j + 1, nil
			}
			// A backslash at j, possibly the last byte of b (k may be 7);
			// w < len(out) as 8 bytes were stored from the old w.
			if j+1 < len(b) && notSimple[b[j+1]] == 0 {
				out[w] = b[j+1]
				w++
				j += 2
				continue
			}
			break
		}
		if j >= len(b) {
			return out[:w], len(b), ErrUnexpectedEnd
		}
		var err error
		var end bool
		out, w, j, end, err = step(out, w, b, j)
		if err != nil || end {
			return out[:w], j, err
		}
	}
}

// step handles one byte or escape at b[j] (general path). end reports the
// closing quote (j is then past it).
func step(out []byte, w int, b []byte, j int) ([]byte, int, int, bool, error) {
	if w+8 > len(out) {
		out = grow(out, w+8)
	}
	c := b[j]
	if c == '"' {
		return out, w, j + 1, true, nil
	}
	if c != '\\' {
		out[w] = c
		return out, w + 1, j + 1, false, nil
	}
	if j+1 >= len(b) {
		return out, w, len(b), false, ErrUnexpectedEnd
	}
	e := b[j+1]
	if d, ok := simpleEscape(e); ok {
		out[w] = d
		return out, w + 1, j + 2, false, nil
	}
	if e != 'u' {
		return out, w, j, false, ErrSyntax
	}
	r, n, ok := unicodeEscape(b[j:])
	if !ok {
		return out, w, j, false, ErrSyntax
	}
	return out, w + utf8.EncodeRune(out[w:], r), j + n, false, nil
}

// simpleEscape returns the byte a one-letter escape (\" \\ \/ \n \t \r \b \f)
// stands for; ok is false for \u and invalid escapes.
func simpleEscape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'n':
		return '\n', true
	case 't':
		return '\t', true
	case 'r':
		return '\r', true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	}
	return 0, false
}

// notSimple marks the escape letters the fast loop leaves to step.
var notSimple = func() (ns [256]uint8) {
	for i := range ns {
		ns[i] = 1
	}
	ns['"'], ns['\\'], ns['/'] = 0, 0, 0
	return ns
}()

// grow returns out (holding w bytes) with a length of at least need.
func grow(out []byte, need int) []byte {
	n := make([]byte, max(2*len(out), need+64))
	copy(n, out)
	return n
}

// unicodeEscape decodes the \uXXXX escape at b[0:] (and the low surrogate
// that may follow it), returning the rune and the bytes consumed.
func unicodeEscape(b []byte) (rune, int, bool) {
	r, ok := hex4(b[2:])
	if !ok {
		return 0, 0, false
	}
	if r >= 0xD800 && r < 0xDC00 {
		if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
			if r2, ok := hex4(b[8:]); ok && r2 >= 0xDC00 && r2 < 0xE000 {
				return 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00), 12, true
			}
		}
		return utf8.RuneError, 6, true
	}
	if r >= 0xDC00 && r < 0xE000 {
		return utf8.RuneError, 6, true
	}
	return r, 6, true
}

// delim marks bytes that end a bare literal (number, true, false, null).
var delim = [256]bool{' ': true, '\t': true, '\n': true, '\r': true, ',': true, ']': true, '}': true, ':': true, '"': true, '[': true, '{': true}

// Literal scans a bare literal (number, true, false, null) starting at b[i]
// and returns the index past it. It does not check the spelling.
func Literal(b []byte, i int) int {
	for i < len(b) && !delim[b[i]] {
		i++
	}
	return i
}

// Skip skips the value starting at b[i] (after whitespace) and returns the
// index past it.
func Skip(b []byte, i int) (int, error) {
	i = SkipSpace(b, i)
	if i >= len(b) {
		return i, ErrUnexpectedEnd
	}
	switch c := b[i]; c {
	case '"':
		end, _, err := String(b, i)
		return end, err
	case '{', '[':
		return skipContainer(b, i)
	case ',', ':', ']', '}':
		return i, ErrSyntax
	default:
		return Literal(b, i), nil
	}
}

// skipContainer skips an object or array with a bracket stack, checking that
// brackets match; it does not check commas and colons (the value is discarded).
func skipContainer(b []byte, i int) (int, error) {
	var stack [MaxDepth]byte
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			end, _, err := String(b, i)
			if err != nil {
				return end, err
			}
			i = end
			continue
		case '{', '[':
			if depth == MaxDepth {
				return i, ErrTooDeep
			}
			if c == '{' {
				stack[depth] = '}'
			} else {
				stack[depth] = ']'
			}
			depth++
		case '}', ']':
			if depth == 0 || stack[depth-1] != c {
				return i, ErrSyntax
			}
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
		i++
	}
	return i, ErrUnexpectedEnd
}

// Int parses an optionally signed decimal integer in b (the whole slice). It
// accepts a fractional part and truncates it, and rejects exponents, empty
// input and overflow beyond int64.
func Int(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	i := 0
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		i++
	}
	if i == len(b) {
		return 0, false
	}
	var n uint64
	digits := 0
	for ; i < len(b); i++ {
		c := b[i]
		if c == '.' {
			break
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		digits++
	}
	if i < len(b) { // fraction: digits only
		i++
		if i == len(b) && digits == 0 {
			return 0, false
		}
		for ; i < len(b); i++ {
			if b[i] < '0' || b[i] > '9' {
				return 0, false
			}
		}
	}
	if digits == 0 || n > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}
