package cwlogs_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

type got struct {
	meta cwlogs.Meta
	id   string
	ts   int64
	msg  string
}

// decodeAll decodes data and copies every event out of the callback.
func decodeAll(t *testing.T, d *cwlogs.Decoder, data []byte) ([]got, cwlogs.Stats, error) {
	t.Helper()
	var out []got
	stats, err := d.Decode(data, func(m *cwlogs.Meta, ev *cwlogs.Event) {
		mc := *m
		mc.SubscriptionFilters = append([]string(nil), m.SubscriptionFilters...)
		out = append(out, got{meta: mc, id: string(ev.ID), ts: ev.Timestamp, msg: string(ev.Message)})
	})
	if err != nil {
		var de *cwlogs.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
		}
	}
	return out, stats, err
}

func reasonOf(err error) string {
	var de *cwlogs.DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

func gz(docs ...string) []byte {
	b := make([][]byte, len(docs))
	for i, d := range docs {
		b[i] = []byte(d)
	}
	return traffic.Gzip(b...)
}

const (
	line1 = `{"requestId":"r1","httpMethod":"GET","path":"/pets/1","status":"200"}`
	line2 = `{"requestId":"r2","httpMethod":"POST","path":"/pets","status":"201","errorMessage":"say \"hi\""}`
)

func doc(group string, msgs ...string) string {
	evs := make([]traffic.LogEvent, len(msgs))
	for i, m := range msgs {
		evs[i] = traffic.LogEvent{ID: fmt.Sprintf("%056d", i+1), Timestamp: 1764000000000 + int64(i), Message: m}
	}
	return string(traffic.Envelope(group, "stream-1", evs))
}

func TestDecodeShapes(t *testing.T) {
	t.Parallel()
	ctl := string(traffic.ControlMessage())
	outOfOrder := `{"logEvents":[{"message":"m1","timestamp":5,"id":"a"},{"id":"b","timestamp":"6","message":"m2","extra":{"x":[1,2]}}],` +
		`"subscriptionFilters":["f1","f2"],"logStream":"s","logGroup":"g","owner":"o","messageType":"DATA_MESSAGE","other":null}`
	bom := "\xEF\xBB\xBF  \n" + doc("g", line1) + "\n"
	gzipBad := gz(doc("g", line1))
	gzipBad[len(gzipBad)-6] ^= 0xff // CRC mismatch

	tests := []struct {
		name     string
		data     []byte
		msgs     []string
		stats    cwlogs.Stats
		reason   string
		errSub   string
		wantMeta *cwlogs.Meta
	}{
		{name: "gzip one document", data: gz(doc("g1", line1, line2)), msgs: []string{line1, line2},
			stats:    cwlogs.Stats{Documents: 1, Events: 2},
			wantMeta: &cwlogs.Meta{MessageType: "DATA_MESSAGE", Owner: traffic.Owner, LogGroup: "g1", LogStream: "stream-1", SubscriptionFilters: []string{traffic.SubscriptionFilter}}},
		{name: "concatenated gzip members", data: gz(doc("g1", line1), doc("g2", line2)), msgs: []string{line1, line2},
			stats: cwlogs.Stats{Documents: 2, Events: 2}},
		{name: "documents back to back in one member", data: gz(doc("g1", line1) + "\n" + doc("g2", line2)), msgs: []string{line1, line2},
			stats: cwlogs.Stats{Documents: 2, Events: 2}},
		{name: "control message acknowledged", data: gz(ctl), stats: cwlogs.Stats{Documents: 1, ControlMessages: 1}},
		{name: "control then data", data: gz(ctl, doc("g", line1)), msgs: []string{line1}, stats: cwlogs.Stats{Documents: 2, ControlMessages: 1, Events: 1}},
		{name: "keys out of order", data: gz(outOfOrder), msgs: []string{"m1", "m2"}, stats: cwlogs.Stats{Documents: 1, Events: 2},
			wantMeta: &cwlogs.Meta{MessageType: "DATA_MESSAGE", Owner: "o", LogGroup: "g", LogStream: "s", SubscriptionFilters: []string{"f1", "f2"}}},
		{name: "escaped message unicode", data: gz(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"a\u00e9\ud83d\ude00\n\t\\\/\"z"}]}`),
			msgs: []string{"aé😀\n\t\\/\"z"}, stats: cwlogs.Stats{Documents: 1, Events: 1}},
		{name: "empty logEvents", data: gz(`{"messageType":"DATA_MESSAGE","logEvents":[]}`), stats: cwlogs.Stats{Documents: 1}},
		{name: "plain JSON envelope (Firehose decompression)", data: []byte(doc("g", line1, line2)), msgs: []string{line1, line2},
			stats: cwlogs.Stats{Documents: 1, Events: 2}},
		{name: "plain JSON with BOM and whitespace", data: []byte(bom), msgs: []string{line1}, stats: cwlogs.Stats{Documents: 1, Events: 1}},
		{name: "plain control message", data: []byte(ctl), stats: cwlogs.Stats{Documents: 1, ControlMessages: 1}},
		{name: "extracted message lines", data: []byte(line1 + "\n\n" + line2 + "\r\n"), msgs: []string{line1, line2}, stats: cwlogs.Stats{Events: 2},
			wantMeta: &cwlogs.Meta{}},
		{name: "extracted lines with BOM", data: []byte("\xEF\xBB\xBF" + line1 + "\n"), msgs: []string{line1}, stats: cwlogs.Stats{Events: 1}},
		{name: "extracted non-JSON lines", data: []byte("127.0.0.1 - - [24/Nov/2026:10:15:30 +0000] \"GET / HTTP/1.1\" 200 12\nx,y\n"),
			msgs: []string{`127.0.0.1 - - [24/Nov/2026:10:15:30 +0000] "GET / HTTP/1.1" 200 12`, "x,y"}, stats: cwlogs.Stats{Events: 2}},

		{name: "empty record", data: nil, reason: cwlogs.ReasonEmpty},
		{name: "whitespace only", data: []byte(" \n\r\n\t"), reason: cwlogs.ReasonEmpty},
		{name: "BOM only", data: []byte("\xEF\xBB\xBF\n"), reason: cwlogs.ReasonEmpty},
		{name: "gzip of nothing", data: gz(""), reason: cwlogs.ReasonEmpty},
		{name: "gzip of whitespace", data: gz("  \n"), reason: cwlogs.ReasonEmpty},
		{name: "truncated gzip", data: gz(doc("g", line1))[:40], reason: cwlogs.ReasonGzip, errSub: "unexpected EOF"},
		{name: "truncated header", data: []byte{0x1f, 0x8b, 8}, reason: cwlogs.ReasonGzip},
		{name: "corrupt gzip checksum", data: gzipBad, reason: cwlogs.ReasonGzip, errSub: "checksum"},
		{name: "truncated second member keeps first", data: func() []byte {
			a, b := gz(doc("g", line1)), gz(doc("g", line2))
			return append(a, b[:len(b)-10]...)
		}(), msgs: []string{line1}, stats: cwlogs.Stats{Documents: 1, Events: 1}, reason: cwlogs.ReasonGzip, errSub: "member 2"},
		{name: "garbage after member", data: append(gz(doc("g", line1)), "garbage!"...), msgs: []string{line1},
			stats: cwlogs.Stats{Documents: 1, Events: 1}, reason: cwlogs.ReasonGzip, errSub: "not gzip data"},
		{name: "trailing newline after members is not an error", data: append(gz(doc("g", line1)), "\n\n"...), msgs: []string{line1},
			stats: cwlogs.Stats{Documents: 1, Events: 1}},
		{name: "unknown message type", data: gz(`{"messageType":"SURPRISE","logEvents":[]}`), reason: cwlogs.ReasonUnknownMessageType, errSub: "SURPRISE"},
		{name: "plain unknown message type", data: []byte(`{"messageType":"X"}`), reason: cwlogs.ReasonUnknownMessageType},
		{name: "gzip document without messageType", data: gz(`{"logEvents":[]}`), reason: cwlogs.ReasonJSON, errSub: "no CloudWatch Logs subscription document"},
		{name: "plain object without messageType before a document", data: []byte(`{"logEvents":[]}` + "\n" + doc("g", line1)), msgs: []string{line1},
			stats: cwlogs.Stats{Documents: 1, Events: 1}, reason: cwlogs.ReasonJSON, errSub: "no messageType"},
		{name: "gzip of message lines", data: gz(line1 + "\n"), reason: cwlogs.ReasonJSON},
		{name: "malformed envelope", data: gz(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"x"`), reason: cwlogs.ReasonJSON},
		{name: "logEvents not an array", data: gz(`{"messageType":"DATA_MESSAGE","owner":"","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":{}}`), reason: cwlogs.ReasonJSON},
		{name: "message cut after a backslash", data: []byte(`{"messageType":"DATA_MESSAGE","owner":"o","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"message":"abcdefg\`),
			reason: cwlogs.ReasonJSON, errSub: "unexpected end"},
		{name: "bad escape in message", data: gz(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"\x"}]}`), reason: cwlogs.ReasonJSON},
		{name: "garbage between documents", data: gz(doc("g", line1) + " x"), msgs: []string{line1},
			stats: cwlogs.Stats{Documents: 1, Events: 1}, reason: cwlogs.ReasonJSON},
	}
	d := cwlogs.NewDecoder(cwlogs.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			evs, stats, err := decodeAll(t, d, tc.data)
			if r := reasonOf(err); r != tc.reason {
				t.Fatalf("reason = %q (err %v), want %q", r, err, tc.reason)
			}
			if err != nil && !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("error %q does not mention %q", err, tc.errSub)
			}
			want := tc.stats
			if tc.reason != "" && want.Errors == 0 {
				want.Errors = 1
			}
			if stats != want {
				t.Errorf("stats = %+v, want %+v", stats, want)
			}
			var msgs []string
			for _, e := range evs {
				msgs = append(msgs, e.msg)
			}
			if fmt.Sprintf("%q", msgs) != fmt.Sprintf("%q", tc.msgs) {
				t.Errorf("messages = %q, want %q", msgs, tc.msgs)
			}
			if tc.wantMeta != nil && len(evs) > 0 {
				if fmt.Sprintf("%+v", evs[0].meta) != fmt.Sprintf("%+v", *tc.wantMeta) {
					t.Errorf("meta = %+v, want %+v", evs[0].meta, *tc.wantMeta)
				}
			}
		})
	}
}

func TestDecodeEventFields(t *testing.T) {
	t.Parallel()
	d := cwlogs.NewDecoder(cwlogs.Options{})
	evs, _, err := decodeAll(t, d, gz(doc("g", line1, line2)))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if want := fmt.Sprintf("%056d", i+1); e.id != want {
			t.Errorf("event %d id = %q, want %q", i, e.id, want)
		}
		if want := 1764000000000 + int64(i); e.ts != want {
			t.Errorf("event %d timestamp = %d, want %d", i, e.ts, want)
		}
	}
}

// TestDecodeMatchesEncodingJSON decodes generated records and compares with
// what encoding/json reads from the same documents.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	o := traffic.DefaultOptions()
	o.ErrorShare = 0.3
	recs := traffic.New(o).Records(20, 5, 40)
	d := cwlogs.NewDecoder(cwlogs.Options{})
	for i, r := range recs {
		evs, stats, err := decodeAll(t, d, r.Data)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			MessageType, Owner, LogGroup, LogStream string
			SubscriptionFilters                     []string
			LogEvents                               []struct {
				ID        string
				Timestamp int64
				Message   string
			}
		}
		if err := json.NewDecoder(zr).Decode(&want); err != nil {
			t.Fatal(err)
		}
		if stats.Events != len(want.LogEvents) || len(evs) != len(want.LogEvents) {
			t.Fatalf("record %d: %d events (stats %d), want %d", i, len(evs), stats.Events, len(want.LogEvents))
		}
		for j, e := range evs {
			w := want.LogEvents[j]
			if e.id != w.ID || e.ts != w.Timestamp || e.msg != w.Message || e.meta.LogGroup != want.LogGroup ||
				e.meta.LogStream != want.LogStream || e.meta.Owner != want.Owner {
				t.Fatalf("record %d event %d = %+v, want %+v", i, j, e, w)
			}
			if e.msg != string(r.Data) && e.msg == "" {
				t.Fatal("empty message")
			}
		}
	}
}

func TestDecodeTooLarge(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	const capBytes = 1 << 20
	d := cwlogs.NewDecoder(cwlogs.Options{MaxDecompressedBytes: capBytes})
	zeros := make([]byte, 16<<20)
	bomb := traffic.Gzip(zeros)
	// A legitimate record just under the cap still decodes.
	big := strings.Repeat("x", capBytes-200)
	ok := gz(doc("g", big)[:0] + `{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"` + big + `"}]}`)

	tests := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"single member bomb", bomb, cwlogs.ReasonTooLarge},
		{"bomb member between two members", gz(doc("g", line1), string(zeros), doc("g", line2)), cwlogs.ReasonTooLarge},
		{"just under the cap", ok, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, _, err := decodeAll(t, d, tc.data)
			runtime.ReadMemStats(&after)
			if r := reasonOf(err); r != tc.reason {
				t.Fatalf("reason = %q (%v), want %q", r, err, tc.reason)
			}
			if tc.reason == cwlogs.ReasonTooLarge {
				if !errors.Is(err, cwlogs.ErrTooLarge) || !strings.Contains(err.Error(), "gzip bomb") {
					t.Errorf("error %q should wrap ErrTooLarge and explain", err)
				}
			}
			// The last buffer is at most cap+1, the ones it grew from under
			// two thirds of that; plus gzip reader state.
			if alloc := after.TotalAlloc - before.TotalAlloc; tc.reason != "" && alloc > capBytes*5/3+256<<10 {
				t.Errorf("allocated %d bytes decoding against a %d-byte cap", alloc, capBytes)
			}
		})
	}
}

func TestDecodeDefaultCapStopsBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses 64 MiB")
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	chunk := make([]byte, 1<<20)
	for range cwlogs.DefaultMaxDecompressedBytes>>20 + 4 {
		_, _ = zw.Write(chunk)
	}
	_ = zw.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := cwlogs.NewDecoder(cwlogs.Options{}).Decode(buf.Bytes(), func(*cwlogs.Meta, *cwlogs.Event) {})
	runtime.ReadMemStats(&after)
	if reasonOf(err) != cwlogs.ReasonTooLarge {
		t.Fatalf("err = %v, want too_large", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > cwlogs.DefaultMaxDecompressedBytes*5/3+1<<20 {
		t.Errorf("allocated %d bytes, cap is %d", alloc, cwlogs.DefaultMaxDecompressedBytes)
	}
}

func TestDecodeConcurrent(t *testing.T) {
	t.Parallel()
	recs := traffic.New(traffic.DefaultOptions()).Records(16, 10, 30)
	d := cwlogs.NewDecoder(cwlogs.Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 20 {
				r := recs[(w+k)%len(recs)]
				i := 0
				_, err := d.Decode(r.Data, func(_ *cwlogs.Meta, ev *cwlogs.Event) {
					if !bytes.Contains(ev.Message, []byte(r.Calls[i].RequestID)) {
						t.Errorf("event %d does not carry request %s", i, r.Calls[i].RequestID)
					}
					i++
				})
				if err != nil || i != len(r.Calls) {
					t.Errorf("decoded %d/%d events: %v", i, len(r.Calls), err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecodeLambdaEvent(t *testing.T) {
	t.Parallel()
	data := gz(doc("g", line1))
	valid := fmt.Sprintf(`{"awslogs":{"data":%q}}`, base64.StdEncoding.EncodeToString(data))
	tests := []struct {
		name    string
		payload string
		want    []byte
		reason  string
	}{
		{"valid", valid, data, ""},
		{"not JSON", "awslogs", nil, cwlogs.ReasonJSON},
		{"no awslogs", `{"Records":[]}`, nil, cwlogs.ReasonJSON},
		{"no data", `{"awslogs":{}}`, nil, cwlogs.ReasonJSON},
		{"empty data", `{"awslogs":{"data":""}}`, nil, cwlogs.ReasonEmpty},
		{"bad base64", `{"awslogs":{"data":"!!!"}}`, nil, cwlogs.ReasonJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := cwlogs.DecodeLambdaEvent([]byte(tc.payload))
			if r := reasonOf(err); r != tc.reason {
				t.Fatalf("reason = %q (%v), want %q", r, err, tc.reason)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("data differs")
			}
		})
	}
	// And the result decodes.
	raw, _ := cwlogs.DecodeLambdaEvent([]byte(valid))
	evs, _, err := decodeAll(t, cwlogs.NewDecoder(cwlogs.Options{}), raw)
	if err != nil || len(evs) != 1 || evs[0].msg != line1 {
		t.Fatalf("decode Lambda data: %v %+v", err, evs)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		max int64
		ok  bool
	}{{0, true}, {cwlogs.DefaultMaxDecompressedBytes, true}, {-1, false}, {10, false}, {1 << 41, false}} {
		err := cwlogs.Options{MaxDecompressedBytes: tc.max}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%d) = %v, want ok=%v", tc.max, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "max_decompressed_bytes") {
			t.Errorf("message %q does not name the setting", err)
		}
	}
	if err := cwlogs.DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{cwlogs.ReasonGzip, cwlogs.ReasonTooLarge, cwlogs.ReasonJSON, cwlogs.ReasonUnknownMessageType, cwlogs.ReasonEmpty} {
		inner := errors.New("inner")
		err := &cwlogs.DecodeError{Reason: reason, Err: inner}
		if !errors.Is(err, inner) || !strings.Contains(err.Error(), "inner") || !strings.HasPrefix(err.Error(), "decode CloudWatch Logs record") {
			t.Errorf("%s: %q", reason, err)
		}
	}
}

// TestDecodeReportsPositions: each bad member or document is reported once,
// where it is, and the documents around it are decoded.
func TestDecodeReportsPositions(t *testing.T) {
	t.Parallel()
	d1, d2 := doc("g", line1), doc("g", line2)
	m1 := gz(d1)
	crc := gz(d1)
	crc[len(crc)-6] ^= 0xff
	badDoc := `{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"x`
	bomb := traffic.Gzip(make([]byte, 2<<20))
	tests := []struct {
		name string
		data []byte
		want []cwlogs.DecodeError // Reason, Member, Offset, DocOffset
	}{
		{"bad checksum member", bytes.Join([][]byte{m1, crc, gz(d2)}, nil),
			[]cwlogs.DecodeError{{Reason: cwlogs.ReasonGzip, Member: 2, Offset: int64(len(m1)), DocOffset: -1}}},
		{"bomb member", bytes.Join([][]byte{m1, bomb, gz(d2)}, nil),
			[]cwlogs.DecodeError{{Reason: cwlogs.ReasonTooLarge, Member: 2, Offset: int64(len(m1)), DocOffset: -1}}},
		{"bad document inside a member", bytes.Join([][]byte{m1, gz("   \n" + badDoc + "\n" + d2)}, nil),
			[]cwlogs.DecodeError{{Reason: cwlogs.ReasonJSON, Member: 2, Offset: int64(len(m1)), DocOffset: 4}}},
		{"garbage between members", bytes.Join([][]byte{m1, []byte("junk"), gz(d2)}, nil),
			[]cwlogs.DecodeError{{Reason: cwlogs.ReasonGzip, Member: 2, Offset: int64(len(m1)), DocOffset: -1}}},
		{"bad document in plain data", []byte(d1 + "\n" + badDoc + "\n" + d2),
			[]cwlogs.DecodeError{{Reason: cwlogs.ReasonJSON, Member: 0, Offset: int64(len(d1) + 1), DocOffset: -1}}},
		{"two bad documents in plain data", []byte(d1 + `{"x":1}` + badDoc + "\n" + d2),
			[]cwlogs.DecodeError{{Reason: cwlogs.ReasonJSON, Offset: int64(len(d1)), DocOffset: -1}, {Reason: cwlogs.ReasonJSON, Offset: int64(len(d1) + 7), DocOffset: -1}}},
	}
	d := cwlogs.NewDecoder(cwlogs.Options{MaxDecompressedBytes: 1 << 20})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var msgs []string
			var errs []*cwlogs.DecodeError
			st := d.DecodeEach(tc.data, func(_ *cwlogs.Meta, ev *cwlogs.Event) { msgs = append(msgs, string(ev.Message)) },
				func(e *cwlogs.DecodeError) { errs = append(errs, e) })
			if len(msgs) != 2 || msgs[0] != line1 || msgs[1] != line2 || st.Documents != 2 {
				t.Fatalf("messages %q (stats %+v), want line1 and line2", msgs, st)
			}
			if len(errs) != len(tc.want) || st.Errors != len(tc.want) {
				t.Fatalf("errors %v, want %d", errs, len(tc.want))
			}
			for i, w := range tc.want {
				e := errs[i]
				if e.Reason != w.Reason || e.Member != w.Member || e.Offset != w.Offset || e.DocOffset != w.DocOffset {
					t.Errorf("error %d = {%s member %d offset %d doc %d} (%v), want {%s member %d offset %d doc %d}",
						i, e.Reason, e.Member, e.Offset, e.DocOffset, e, w.Reason, w.Member, w.Offset, w.DocOffset)
				}
				if !strings.Contains(e.Error(), e.Position()) {
					t.Errorf("message %q does not give the position %q", e, e.Position())
				}
			}
		})
	}
}
