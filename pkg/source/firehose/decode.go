package firehose

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
)

// Sentinel classes of a bad delivery body; the receiver maps them to replies.
var (
	// ErrTooLarge: the decoded body exceeds the cap (413).
	ErrTooLarge = errors.New("request body too large")
	// ErrMalformed: the body is not a Firehose delivery (400).
	ErrMalformed = errors.New("malformed request body")
)

// Request is a decoded Firehose delivery.
type Request struct {
	RequestID string
	Timestamp int64 // ms since the epoch, as Firehose sent it
	// Records are the base64-decoded record payloads, in order. Their own
	// encoding (gzip document, JSON document, message lines) is left as is:
	// the pipeline detects it per record.
	Records [][]byte
}

// DecodeRequest reads a delivery body, at most maxBytes after content
// decoding. contentEncoding is the Content-Encoding header. Body-level gzip is
// undone exactly once: when the header says gzip, or when the body starts
// with the gzip magic (a JSON body never does). The JSON is read as a stream,
// so the raw body is never held alongside the decoded records.
func DecodeRequest(body io.Reader, contentEncoding string, maxBytes int64) (*Request, error) {
	br := bufio.NewReaderSize(body, 4096)
	head, _ := br.Peek(2)
	isGzip := cwlogs.IsGzip(head)
	var src io.Reader = br
	switch enc := strings.ToLower(strings.TrimSpace(contentEncoding)); enc {
	case "", "identity", "gzip":
		if enc == "gzip" && !isGzip {
			return nil, fmt.Errorf("%w: Content-Encoding is gzip but the body is not gzip data", ErrMalformed)
		}
	default:
		return nil, fmt.Errorf("%w: unsupported Content-Encoding %q (expected gzip or none)", ErrMalformed, contentEncoding)
	}
	if isGzip {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: read gzip header: %v", ErrMalformed, err)
		}
		defer zr.Close()
		src = zr
	}
	lr := &capReader{r: src, left: maxBytes}
	req, err := decodeJSON(&squeezeSpace{r: lr})
	if err != nil {
		if errors.Is(err, ErrTooLarge) || lr.over {
			return nil, fmt.Errorf("%w: more than %d bytes after content decoding", ErrTooLarge, maxBytes)
		}
		if errors.Is(err, ErrMalformed) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return req, nil
}

func decodeJSON(r io.Reader) (*Request, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	req := &Request{}
	var haveID bool
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		switch key {
		case "requestId":
			if err := dec.Decode(&req.RequestID); err != nil {
				return nil, fmt.Errorf("%w: requestId: %v", ErrMalformed, err)
			}
			haveID = true
		case "timestamp":
			var n json.Number
			if err := dec.Decode(&n); err != nil {
				return nil, fmt.Errorf("%w: timestamp: %v", ErrMalformed, err)
			}
			if req.Timestamp, err = n.Int64(); err != nil {
				return nil, fmt.Errorf("%w: timestamp %q is not an integer", ErrMalformed, n)
			}
		case "records":
			recs, err := decodeRecords(dec)
			if err != nil {
				return nil, err
			}
			req.Records = recs
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	if !haveID || req.RequestID == "" {
		return nil, fmt.Errorf("%w: requestId is missing", ErrMalformed)
	}
	return req, nil
}

func decodeRecords(dec *json.Decoder) ([][]byte, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if t == nil { // "records": null
		return nil, nil
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: records is not an array", ErrMalformed)
	}
	var recs [][]byte
	for i := 0; dec.More(); i++ {
		// encoding/json decodes []byte from standard base64, which is what Firehose sends.
		var rec struct {
			Data []byte `json:"data"`
		}
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, ErrTooLarge) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: records[%d]: %v", ErrMalformed, i, err)
		}
		recs = append(recs, rec.Data)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	return recs, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("%w: expected %q, got %v", ErrMalformed, want, t)
	}
	return nil
}

// capReader fails with ErrTooLarge once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		c.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1] // one byte past the cap tells "exactly at" from "over"
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		c.over = true
		return n, ErrTooLarge
	}
	return n, err
}

// squeezeSpace collapses each run of JSON whitespace outside strings to one
// space. encoding/json's Decoder rescans the whitespace before a token on
// every buffer refill, so megabytes of it cost time quadratic in their size
// (16 MiB: seconds); squeezed, decoding is linear. Strings pass unchanged.
type squeezeSpace struct {
	r     io.Reader
	inStr bool // inside a string
	esc   bool // the previous byte was a backslash inside a string
	space bool // the previous byte written was whitespace outside a string
}

func (s *squeezeSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		w := s.squeeze(p[:n])
		if w > 0 || err != nil {
			return w, err
		}
	}
}

// squeeze rewrites b in place and returns the new length.
func (s *squeezeSpace) squeeze(b []byte) int {
	w := 0
	for i := 0; i < len(b); {
		if s.inStr {
			if s.esc {
				s.esc = false
				b[w] = b[i]
				w, i = w+1, i+1
				continue
			}
			// Copy up to the closing quote in one go (base64 data is most of a body).
			rest := b[i:]
			q := bytes.IndexByte(rest, '"')
			if q < 0 {
				q = len(rest)
			}
			if bs := bytes.IndexByte(rest[:q], '\\'); bs >= 0 {
				q = bs
				s.esc = true
				q++ // copy the backslash too
			} else if q < len(rest) {
				s.inStr = false
				q++ // and the quote
			}
			w += copy(b[w:], rest[:q])
			i += q
			continue
		}
		c := b[i]
		i++
		switch c {
		case ' ', '\t', '\n', '\r':
			if s.space {
				continue
			}
			s.space = true
			b[w] = ' '
			w++
			continue
		case '"':
			s.inStr = true
		}
		s.space = false
		b[w] = c
		w++
	}
	return w
}
