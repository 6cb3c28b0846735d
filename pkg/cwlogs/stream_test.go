package cwlogs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// TestStreamResyncProperty: the streaming readers keep the resync contract
// on the generated records: every valid document's events exactly once.
func TestStreamResyncProperty(t *testing.T) {
	t.Parallel()
	d := cwlogs.NewDecoder(cwlogs.Options{})
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 600 {
		choices := make([]byte, 1+rng.IntN(12))
		for j := range choices {
			choices[j] = byte(rng.UintN(256))
		}
		checkStream(t, d, buildResync(choices, uint64(i)))
	}
}

// FuzzStreamResync drives the generator through the streaming readers.
func FuzzStreamResync(f *testing.F) {
	f.Add([]byte{shapeMembers, kindValid, kindTruncated, kindCorruptGzip, kindControl, kindGarbage}, uint64(1))
	f.Add([]byte{shapeGzipOfPlain, kindValid, kindTruncated, kindValid, kindNotEnvelope, kindValid}, uint64(2))
	f.Add([]byte{shapePlain, kindTruncated, kindValid, kindBadEscape, kindValid}, uint64(3))
	d := cwlogs.NewDecoder(cwlogs.Options{})
	f.Fuzz(func(t *testing.T, choices []byte, seed uint64) {
		if len(choices) > 64 {
			choices = choices[:64]
		}
		checkStream(t, d, buildResync(choices, seed))
	})
}

// checkStream reads rc.data as replay does (Members when gzip, Values, the
// Decoder per document) and checks the resync contract.
func checkStream(t *testing.T, d *cwlogs.Decoder, rc resyncCase) {
	t.Helper()
	if rc.docs == 0 {
		return // nothing to hold a stream of no document to
	}
	seen := map[string]int{}
	var errs []*cwlogs.DecodeError
	bad := func(e *cwlogs.DecodeError) { errs = append(errs, e) }
	var r io.Reader = iotest.HalfReader(bytes.NewReader(rc.data))
	var m *cwlogs.Members
	if bytes.Contains(rc.data, []byte{0x1f, 0x8b, 0x08}) {
		m = cwlogs.NewMembers(r, bad)
		r = m
	}
	v := cwlogs.NewValues(r, m, 1<<20, bad)
	docs := 0
	for {
		val, err := v.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !cwlogs.IsDocument(val) {
			errs = append(errs, &cwlogs.DecodeError{Reason: cwlogs.ReasonJSON, Err: errors.New("not a document"), Offset: v.Offset()})
			continue
		}
		st := d.DecodeEach(val, func(_ *cwlogs.Meta, ev *cwlogs.Event) { seen[string(ev.Message)]++ }, bad)
		docs += st.Documents
	}
	where := strings.Join(rc.desc, ",")
	for msg := range rc.valid {
		if seen[msg] != 1 {
			t.Fatalf("[%s] valid event %q seen %d times; errors %v", where, msg, seen[msg], errs)
		}
	}
	for msg, n := range seen {
		if n != 1 || (!rc.valid[msg] && !strings.Contains(msg, `"bad-`) && !strings.HasPrefix(msg, "CWL CONTROL")) {
			t.Fatalf("[%s] event %q seen %d times", where, msg, n)
		}
	}
	if docs != rc.docs {
		t.Fatalf("[%s] %d documents, want %d; errors %v", where, docs, rc.docs, errs)
	}
	if rc.bad > 0 && len(errs) == 0 {
		t.Fatalf("[%s] %d bad items, no error reported", where, rc.bad)
	}
	for _, e := range errs {
		if e.Offset < 0 || e.Reason == "" {
			t.Fatalf("[%s] error without position: %+v", where, e)
		}
	}
}

func TestValuesCapsEachDocument(t *testing.T) {
	t.Parallel()
	big := `{"messageType":"DATA_MESSAGE","logEvents":[{"message":"` + strings.Repeat("x", 5000) + `"}]}`
	small := `{"messageType":"CONTROL_MESSAGE"}`
	var errs []*cwlogs.DecodeError
	v := cwlogs.NewValues(strings.NewReader(small+"\n"+big+"\n"+small+"\n"), nil, 2048, func(e *cwlogs.DecodeError) { errs = append(errs, e) })
	n := 0
	for {
		_, err := v.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		n++
	}
	if n != 2 || len(errs) != 1 || errs[0].Reason != cwlogs.ReasonTooLarge || errs[0].Offset != int64(len(small)+1) {
		t.Fatalf("%d values, errors %+v; want 2 and one too_large at %d", n, errs, len(small)+1)
	}
}

// FuzzValues: on any input the stream readers end, every value they return
// is one JSON object encoding/json accepts, and every skipped stretch is
// reported with a known reason.
func FuzzValues(f *testing.F) {
	f.Add([]byte(`{"a":1}{"b":[1,2,{"c":"\u00e9"}]}` + "\n" + `{"messageType":"x"}`))
	f.Add([]byte(`{"a":"cut` + "\n" + `{"b":2} junk {"c":true}`))
	f.Add(append(traffic.Gzip([]byte(`{"a":1}`)), traffic.Gzip([]byte(`{"b":2}`))[:15]...))
	f.Add([]byte("\xef\xbb\xbf {\"a\":null}  [1] {\"b\":-1.5e3}"))
	reasons := map[string]bool{cwlogs.ReasonGzip: true, cwlogs.ReasonTooLarge: true, cwlogs.ReasonJSON: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		bad := func(e *cwlogs.DecodeError) {
			if !reasons[e.Reason] || e.Err == nil {
				t.Fatalf("bad report %+v", e)
			}
		}
		var r io.Reader = iotest.HalfReader(bytes.NewReader(data))
		var m *cwlogs.Members
		if cwlogs.IsGzip(data) {
			m = cwlogs.NewMembers(r, bad)
			r = m
		}
		v := cwlogs.NewValues(r, m, 4096, bad)
		for range len(data) + 2 {
			val, err := v.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if !json.Valid(val) || val[0] != '{' || len(val) > 4096 {
				t.Fatalf("returned %q: not one JSON object within the cap", val)
			}
		}
		if !cwlogs.IsGzip(data) {
			t.Fatal("more values than input bytes")
		}
	})
}
