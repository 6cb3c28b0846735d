package firehose

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		body     []byte
		encoding string
		max      int64
		wantErr  error
		wantRecs []string
	}{
		{name: "plain", body: firehoseBody("a", [][]byte{[]byte("x"), []byte("yz")}), wantRecs: []string{"x", "yz"}},
		{name: "gzip by header", body: gz(firehoseBody("a", [][]byte{[]byte("x")})), encoding: "gzip", wantRecs: []string{"x"}},
		{name: "gzip by magic", body: gz(firehoseBody("a", [][]byte{[]byte("x")})), wantRecs: []string{"x"}},
		{name: "record gzip left alone", body: gz(firehoseBody("a", [][]byte{gz([]byte("x"))})), encoding: "GZIP", wantRecs: []string{string(gz([]byte("x")))}},
		{name: "unknown keys skipped", body: []byte(`{"extra":{"a":[1,2]},"requestId":"a","records":[{"data":"eA==","other":1}],"timestamp":5}`), wantRecs: []string{"x"}},
		{name: "null records", body: []byte(`{"requestId":"a","records":null}`)},
		{name: "exactly at the cap", body: firehoseBody("a", nil), max: int64(len(firehoseBody("a", nil)))},
		{name: "one byte over", body: firehoseBody("a", nil), max: int64(len(firehoseBody("a", nil))) - 1, wantErr: ErrTooLarge},
		{name: "bomb", body: gz(firehoseBody("a", [][]byte{make([]byte, 1<<20)})), max: 4096, wantErr: ErrTooLarge},
		{name: "empty", body: nil, wantErr: ErrMalformed},
		{name: "array", body: []byte(`[]`), wantErr: ErrMalformed},
		{name: "float timestamp", body: []byte(`{"requestId":"a","timestamp":1.5}`), wantErr: ErrMalformed},
		{name: "empty id", body: []byte(`{"requestId":"","records":[]}`), wantErr: ErrMalformed},
		{name: "bad gzip", body: append([]byte{0x1f, 0x8b}, "garbage"...), wantErr: ErrMalformed},
		{name: "truncated gzip", body: gz(firehoseBody("a", nil))[:20], wantErr: ErrMalformed},
		{name: "deflate", body: []byte(`{}`), encoding: "deflate", wantErr: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			req, err := DecodeRequest(bytes.NewReader(tc.body), tc.encoding, max)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if req.RequestID != "a" {
				t.Errorf("requestId %q", req.RequestID)
			}
			var got []string
			for _, r := range req.Records {
				got = append(got, string(r))
			}
			if strings.Join(got, "|") != strings.Join(tc.wantRecs, "|") {
				t.Errorf("records %q, want %q", got, tc.wantRecs)
			}
		})
	}
}

func TestIDSetEvictsOldest(t *testing.T) {
	t.Parallel()
	s := NewIDSet(3)
	for _, id := range []string{"a", "b", "c", "a", "d"} {
		s.Add(id)
	}
	for id, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if s.Contains(id) != want {
			t.Errorf("Contains(%q) = %v, want %v", id, !want, want)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len %d, want 3", s.Len())
	}
	z := NewIDSet(0)
	z.Add("a")
	if z.Contains("a") {
		t.Error("a zero-capacity set remembered an id")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(firehoseBody("a", [][]byte{[]byte("x")}), false)
	f.Add(gz(firehoseBody("a", [][]byte{gz([]byte("x"))})), true)
	f.Add([]byte(`{"requestId":"a","timestamp":1,"records":[{"data":""}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, gzipHeader bool) {
		enc := ""
		if gzipHeader {
			enc = "gzip"
		}
		const max = 1 << 20
		req, err := DecodeRequest(bytes.NewReader(body), enc, max)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error outside the sentinel classes: %v", err)
			}
			return
		}
		if req.RequestID == "" {
			t.Fatal("accepted a delivery without a requestId")
		}
		total := 0
		for _, r := range req.Records {
			total += len(r)
		}
		if total > max {
			t.Fatalf("decoded %d record bytes from a body capped at %d", total, max)
		}
	})
}
