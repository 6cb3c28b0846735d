package cwlogs_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// Container shapes a record (or file) arrives in.
const (
	shapeMembers     = iota // one gzip member per item (Kinesis records, S3 objects)
	shapePlain              // documents back to back (Firehose decompression)
	shapeGzipOfPlain        // one gzip member of documents back to back
	shapeLines              // one document per line
	numShapes
)

var shapeNames = [numShapes]string{"members", "plain", "gzip_of_plain", "lines"}

// Item kinds.
const (
	kindValid = iota
	kindControl
	kindGarbage     // not JSON
	kindNotEnvelope // JSON object without messageType
	kindUnknownType // well-formed, messageType SURPRISE
	kindTruncated   // a document cut short
	kindBadEscape   // malformed string escape inside an event
	kindEmptyMember // gzip of nothing (members shape only)
	kindCorruptGzip // a member with a damaged deflate stream (members shape only)
	kindTruncatedGz // a member cut short (members shape only)
	numKinds
)

// resyncCase is a generated record and what decoding it must yield.
type resyncCase struct {
	data       []byte
	valid      map[string]bool // messages of valid documents: each exactly once
	docs       int             // valid + control documents
	controls   int
	bad        int // bad items
	badRuns    int // maximal runs of consecutive bad items
	plainShape bool
	desc       []string
}

// buildResync builds a record from choice bytes: the first picks the shape,
// each next one an item.
func buildResync(choices []byte, seed uint64) resyncCase {
	rc := resyncCase{valid: map[string]bool{}}
	if len(choices) == 0 {
		return rc
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(choices))))
	shape := int(choices[0]) % numShapes
	rc.plainShape = shape == shapePlain || shape == shapeLines
	rc.desc = append(rc.desc, shapeNames[shape])
	var plain [][]byte // JSON items for the plain shapes
	var members [][]byte
	prevBad := false
	for n, c := range choices[1:] {
		kind := int(c) % numKinds
		if shape != shapeMembers && kind >= kindEmptyMember {
			kind = kindValid
		}
		// Messages carry braces and quotes, so resync must not stop inside them.
		msg := func(tag string, j int) string {
			return fmt.Sprintf(`{"requestId":"%s-%d-%d","path":"/p{%d}","ua":"x\"}{\"y"}`, tag, n, j, j)
		}
		events := func(tag string) []traffic.LogEvent {
			k := 1 + rng.IntN(4)
			evs := make([]traffic.LogEvent, k)
			for j := range evs {
				evs[j] = traffic.LogEvent{ID: fmt.Sprint(n, j), Timestamp: int64(j), Message: msg(tag, j)}
			}
			return evs
		}
		var item []byte
		isBad := true
		switch kind {
		case kindValid:
			evs := events("ok")
			for _, e := range evs {
				rc.valid[e.Message] = true
			}
			item, isBad = traffic.Envelope("g", "s", evs), false
			rc.docs++
		case kindControl:
			item, isBad = traffic.ControlMessage(), false
			rc.docs++
			rc.controls++
		case kindGarbage:
			item = []byte("not json at all")
		case kindNotEnvelope:
			item = []byte(`{"x":1,"logGroup":"g"}`)
		case kindUnknownType:
			item = []byte(`{"messageType":"SURPRISE","logEvents":[{"id":"1","timestamp":1,"message":"bad"}]}`)
		case kindTruncated:
			full := traffic.Envelope("g", "s", events("bad"))
			item = full[:1+rng.IntN(len(full)-1)]
		case kindBadEscape:
			item = []byte(`{"messageType":"DATA_MESSAGE","owner":"o","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"1","timestamp":1,"message":"bad\x"}]}`)
		case kindEmptyMember:
			members = append(members, traffic.Gzip(nil))
			isBad = false
		case kindCorruptGzip, kindTruncatedGz:
			doc := traffic.Envelope("g", "s", events("bad"))
			m := traffic.Gzip(doc)
			if kind == kindCorruptGzip {
				m[10+(len(m)-18)/2] ^= 0xff // in the deflate data: header bytes like mtime are not checked
			} else {
				// Cut inside the document: a member cut in its trailer, or
				// after its last literal, still inflates to the whole,
				// intact document, which a streaming reader may pass on
				// before it meets the cut (found by FuzzStreamResync).
				cut := 10 + rng.IntN(len(m)-10)
				for cut > 10 && len(inflatePrefix(m[:cut])) >= len(doc) {
					cut--
				}
				m = m[:cut]
			}
			members = append(members, m)
		}
		rc.desc = append(rc.desc, fmt.Sprint(kind))
		if isBad {
			rc.bad++
			if !prevBad {
				rc.badRuns++
			}
		}
		prevBad = isBad
		if item == nil {
			continue
		}
		if shape == shapeMembers {
			if kind == kindGarbage {
				members = append(members, item) // raw bytes between members
			} else {
				members = append(members, traffic.Gzip(item))
			}
			continue
		}
		plain = append(plain, item)
	}
	switch shape {
	case shapeMembers:
		rc.data = bytes.Join(members, nil)
	case shapePlain:
		rc.data = bytes.Join(plain, nil)
	case shapeGzipOfPlain:
		rc.data = traffic.Gzip(bytes.Join(plain, nil))
	case shapeLines:
		rc.data = append(bytes.Join(plain, []byte("\n")), '\n')
	}
	return rc
}

// inflatePrefix is what a gzip reader yields from a member cut short, up to
// the cut.
func inflatePrefix(m []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(m))
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(zr) // the error is the cut
	return out
}

// checkResync decodes rc and asserts the resync contract.
func checkResync(t *testing.T, d *cwlogs.Decoder, rc resyncCase) {
	t.Helper()
	seen := map[string]int{}
	var errs []*cwlogs.DecodeError
	stats := d.DecodeEach(rc.data, func(_ *cwlogs.Meta, ev *cwlogs.Event) {
		seen[string(ev.Message)]++
	}, func(e *cwlogs.DecodeError) {
		errs = append(errs, e)
	})
	where := strings.Join(rc.desc, ",")
	if rc.docs == 0 && (rc.plainShape || !bytes.Contains(rc.data, []byte{0x1f, 0x8b, 0x08})) {
		// Plain data without a single good document may be message lines
		// (Firehose message extraction): nothing to hold it to.
		return
	}
	for m := range rc.valid {
		if seen[m] != 1 {
			t.Fatalf("[%s] event %q of a valid document emitted %d times, want once (errors %v)", where, m, seen[m], errs)
		}
	}
	for m, n := range seen {
		if n != 1 {
			t.Fatalf("[%s] event %q emitted %d times", where, m, n)
		}
		// Events of a bad document are emitted only when they precede its damage.
		if !rc.valid[m] && !strings.Contains(m, `"bad-`) && m != "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream." {
			t.Fatalf("[%s] emitted %q, which is in no document", where, m)
		}
	}
	if stats.Documents != rc.docs || stats.ControlMessages != rc.controls {
		t.Fatalf("[%s] stats %+v, want %d documents (%d control)", where, stats, rc.docs, rc.controls)
	}
	if stats.Errors != len(errs) {
		t.Fatalf("[%s] stats count %d errors, callback saw %d", where, stats.Errors, len(errs))
	}
	// Every run of bad items is reported; a run may be reported as one span,
	// never as more errors than it has items (a false gzip header inside a
	// damaged member is the only extra an error can come from).
	upper := rc.bad + bytes.Count(rc.data, []byte{0x1f, 0x8b, 0x08})
	empty := rc.docs == 0 && rc.bad == 0
	switch {
	case empty:
		if stats.Errors != 1 || errs[0].Reason != cwlogs.ReasonEmpty {
			t.Fatalf("[%s] record without documents: errors %v, want one %q", where, errs, cwlogs.ReasonEmpty)
		}
	case stats.Errors < rc.badRuns || stats.Errors > upper:
		t.Fatalf("[%s] %d errors for %d bad items in %d runs: %v", where, stats.Errors, rc.bad, rc.badRuns, errs)
	}
	for _, e := range errs {
		if e.Reason == "" || e.Err == nil || (e.Offset < 0 && e.Reason != cwlogs.ReasonEmpty) {
			t.Fatalf("[%s] error without reason or position: %+v", where, e)
		}
		if e.Offset > int64(len(rc.data)) {
			t.Fatalf("[%s] error offset %d past the record's %d bytes", where, e.Offset, len(rc.data))
		}
		var de *cwlogs.DecodeError
		if !errors.As(e, &de) {
			t.Fatal("not a DecodeError")
		}
	}
}

// TestResyncProperty decodes generated records mixing valid and bad
// documents in every container shape.
func TestResyncProperty(t *testing.T) {
	t.Parallel()
	d := cwlogs.NewDecoder(cwlogs.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 1500 {
		choices := make([]byte, 1+rng.IntN(12))
		for j := range choices {
			choices[j] = byte(rng.UintN(256))
		}
		checkResync(t, d, buildResync(choices, uint64(i)))
	}
}

// FuzzResync drives the generator: the fuzzer picks shapes, items and cuts.
func FuzzResync(f *testing.F) {
	f.Add([]byte{shapeMembers, kindValid, kindCorruptGzip, kindValid}, uint64(1))
	f.Add([]byte{shapePlain, kindValid, kindTruncated, kindValid, kindGarbage, kindValid}, uint64(2))
	f.Add([]byte{shapeLines, kindNotEnvelope, kindValid, kindUnknownType, kindValid}, uint64(3))
	f.Add([]byte{shapeGzipOfPlain, kindControl, kindBadEscape, kindValid}, uint64(4))
	d := cwlogs.NewDecoder(cwlogs.Options{MaxDecompressedBytes: fuzzCap})
	f.Fuzz(func(t *testing.T, choices []byte, seed uint64) {
		if len(choices) > 64 {
			choices = choices[:64]
		}
		checkResync(t, d, buildResync(choices, seed))
	})
}
