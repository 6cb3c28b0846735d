package firehose

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
)

// Per-delivery bounds enforced by the receiver around DecodeRequest and the
// pipeline, so that an authenticated but hostile (or broken) client cannot
// make one delivery cost more than a documented share of memory and CPU.

var (
	errTooManyRecords    = errors.New("too many records")
	errTooMuchInflation  = errors.New("records decompress to too many bytes")
	errDeadlineInRecords = errors.New("ack deadline passed while checking the records")
)

// decodeBounded is DecodeRequest with the number of records capped while the
// body is read: the decoded stream goes through a counter of JSON objects
// (the envelope plus one per record), which stops the read at the cap before
// millions of tiny records are held. Body-level gzip is undone here, once, so
// that the counter sees the JSON; DecodeRequest then gets the plain stream.
func decodeBounded(body io.Reader, contentEncoding string, maxBytes int64, maxRecords int) (*Request, error) {
	br := bufio.NewReaderSize(body, 4096)
	head, _ := br.Peek(2)
	enc := strings.ToLower(strings.TrimSpace(contentEncoding))
	isGzip := cwlogs.IsGzip(head)
	oc := &objectCounter{max: maxRecords + 1}
	switch {
	case isGzip && (enc == "gzip" || enc == "" || enc == "identity"):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: read gzip header: %v", ErrMalformed, err)
		}
		defer zr.Close()
		inner := bufio.NewReaderSize(zr, 4096)
		if h, _ := inner.Peek(2); cwlogs.IsGzip(h) {
			return nil, fmt.Errorf("%w: the body is gzipped twice", ErrMalformed)
		}
		oc.r = inner
		enc = "identity"
	default:
		// Plain, or an encoding DecodeRequest refuses with its own message.
		oc.r = br
	}
	req, err := DecodeRequest(oc, enc, maxBytes)
	if oc.over {
		return nil, fmt.Errorf("%w: more than %d in one delivery", errTooManyRecords, maxRecords)
	}
	return req, err
}

// objectCounter passes a JSON stream through and fails once it has more than
// max objects ('{' outside strings).
type objectCounter struct {
	r        io.Reader
	max, n   int
	inString bool
	escaped  bool
	over     bool
}

func (c *objectCounter) Read(p []byte) (int, error) {
	if c.over {
		return 0, errTooManyRecords
	}
	n, err := c.r.Read(p)
	for i := 0; i < n; i++ {
		if c.escaped {
			c.escaped = false
			continue
		}
		if c.inString {
			// Base64 data has neither quote nor backslash: skip to the next
			// one (two IndexByte scans are much faster than IndexAny).
			seg := p[i:n]
			j := bytes.IndexByte(seg, '"')
			lim := j
			if j < 0 {
				lim = len(seg)
			}
			if b := bytes.IndexByte(seg[:lim], '\\'); b >= 0 {
				j = b
			}
			if j < 0 {
				break
			}
			i += j
			if p[i] == '\\' {
				c.escaped = true
			} else {
				c.inString = false
			}
			continue
		}
		switch p[i] {
		case '"':
			c.inString = true
		case '{':
			if c.n++; c.n > c.max {
				c.over = true
				return i, errTooManyRecords
			}
		}
	}
	return n, err
}

// measureRecords returns what each record decodes to (inflated size for a
// gzip record, its own size otherwise), failing once the total passes max or
// ctx ends: it inflates to nowhere, a few KiB at a time, checking the
// deadline as it goes, so nothing of a bomb is kept and the time it may take
// is bounded by the ack deadline. The pipeline inflates the records again
// when it decodes them; that second pass is bounded by the same total.
func measureRecords(ctx context.Context, recs [][]byte, max int64) ([]int64, error) {
	sizes := make([]int64, len(recs))
	var total int64
	var zr *gzip.Reader
	buf := make([]byte, 32<<10)
	for i, data := range recs {
		if ctx.Err() != nil {
			return nil, errDeadlineInRecords
		}
		if !cwlogs.IsGzip(data) {
			sizes[i] = int64(len(data))
		} else {
			n, err := inflatedSize(ctx, &zr, data, max-total, buf)
			if err != nil {
				return nil, err
			}
			sizes[i] = n
		}
		if total += sizes[i]; total > max {
			return nil, fmt.Errorf("%w: more than %d bytes (records[%d])", errTooMuchInflation, max, i)
		}
	}
	return sizes, nil
}

// inflatedSize inflates data (every gzip member) and counts the bytes, up to
// limit+1. A corrupt stream counts what it inflated: the pipeline reports it.
func inflatedSize(ctx context.Context, zr **gzip.Reader, data []byte, limit int64, buf []byte) (int64, error) {
	var err error
	if *zr == nil {
		*zr, err = gzip.NewReader(bytes.NewReader(data))
	} else {
		err = (*zr).Reset(bytes.NewReader(data))
	}
	if err != nil {
		return 0, nil
	}
	var n int64
	for i := 0; ; i++ {
		m, err := (*zr).Read(buf)
		n += int64(m)
		if n > limit {
			return n, nil
		}
		if err != nil {
			return n, nil
		}
		// A deadline check every 32 reads (~1 MiB) keeps its cost negligible.
		if i%32 == 31 && ctx.Err() != nil {
			return n, errDeadlineInRecords
		}
	}
}

// chunks splits the records into runs of at most maxRecords records and
// maxBytes decoded bytes (a single record may exceed it), so that the
// receiver can check the deadline between runs.
func chunks(sizes []int64, maxRecords int, maxBytes int64) [][2]int {
	var out [][2]int
	start, sum := 0, int64(0)
	for i, n := range sizes {
		if i > start && (i-start >= maxRecords || sum+n > maxBytes) {
			out = append(out, [2]int{start, i})
			start, sum = i, 0
		}
		sum += n
	}
	if start < len(sizes) {
		out = append(out, [2]int{start, len(sizes)})
	}
	return out
}

// bodyDeadline is when a delivery's body must have arrived.
func (r *Receiver) bodyDeadline(arrived time.Time) time.Time {
	return arrived.Add(min(r.cfg.BodyReadTimeout, r.cfg.AckDeadline))
}
