package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// requestIDs reads r and returns the requestId of every access-log line its
// batches carry, decoding CloudWatch Logs records as the pipeline does.
func requestIDs(t *testing.T, r []byte, o Options) ([]string, Stats) {
	t.Helper()
	d := cwlogs.NewDecoder(cwlogs.Options{})
	var ids []string
	add := func(line []byte) {
		var v struct {
			RequestID string `json:"requestId"`
		}
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, v.RequestID)
	}
	st, err := Read(context.Background(), "in", bytes.NewReader(r), o, func(b pipeline.Batch) error {
		for _, rec := range b.Records {
			if b.Format == pipeline.FormatLines {
				for _, l := range bytes.Split(bytes.TrimSpace(rec.Data), []byte("\n")) {
					add(l)
				}
				continue
			}
			d.DecodeEach(rec.Data, func(_ *cwlogs.Meta, ev *cwlogs.Event) { add(ev.Message) },
				func(e *cwlogs.DecodeError) { t.Errorf("record %s: %v", rec.ID, e) })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, st
}

func TestReadShapesFromFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file  string
		shape string
		ids   []string
	}{
		{"kinesis-lambda-event.json", ShapeKinesisEvents, []string{"kin-1", "kin-2", "kin-3"}},
		{"firehose-request-body.json", ShapeFirehoseBodies, []string{"fh-1", "fh-2", "fh-3"}},
		{"firehose-s3-backup.jsonl", ShapeFirehoseBackup, []string{"bk-1", "bk-2", "bk-3"}},
		{"filter-log-events.json", ShapeFilterEvents, []string{"fl-1", "fl-2"}},
		{"logs-tail.txt", ShapeLines, []string{"tl-1", "tl-2", "tl-3"}},
		{"cloudwatch-export.txt", ShapeLines, []string{"ex-1", "ex-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range []struct {
				name string
				data []byte
			}{{"plain", data}, {"gzip", traffic.Gzip(data)}, {"twice", append(append([]byte{}, data...), data...)}} {
				ids, st := requestIDs(t, in.data, DefaultOptions())
				want := tt.ids
				if in.name == "twice" {
					want = append(slices.Clone(tt.ids), tt.ids...)
				}
				if st.Shape != tt.shape || st.DecodeErrors != 0 || !slices.Equal(ids, want) {
					t.Fatalf("%s: shape %q, %d decode errors, ids %q; want %q, 0, %q", in.name, st.Shape, st.DecodeErrors, ids, tt.shape, want)
				}
			}
		})
	}
}

func TestReadUnknownShapeIsOneError(t *testing.T) {
	t.Parallel()
	clf, _ := os.ReadFile(filepath.Join("testdata", "clf.log"))
	arr, _ := os.ReadFile(filepath.Join("testdata", "array.json"))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"CLF", bytes.Repeat(clf, 50), "CLF (Common Log Format)"},
		{"gzip CLF", traffic.Gzip(bytes.Repeat(clf, 50)), "CLF (Common Log Format)"},
		{"JSON array", arr, "a JSON array"},
		{"binary", []byte{0, 1, 2, 3, 0xff, 0xfe}, "binary data"},
		{"csv", []byte("requestId,httpMethod,path,status\nr1,GET,/,200\n"), "CSV"},
		{"prose", []byte("hello world\n"), "text lines that are not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Read(context.Background(), "in", bytes.NewReader(tt.in), DefaultOptions(), func(pipeline.Batch) error {
				t.Fatal("emitted a batch of an unknown shape")
				return nil
			})
			if !errors.Is(err, ErrUnknownShape) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "replay reads") {
				t.Fatalf("err %v, want one naming %q and what replay reads", err, tt.want)
			}
		})
	}
}

// A bad document or member in the middle of a file skips only itself.
func TestReadResyncsInsideAFile(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.Options{Seed: 7})
	var docs [][]byte
	var want []string
	for range 6 {
		evs, calls := g.Events(nil, 3)
		docs = append(docs, traffic.Envelope("g", "s", evs))
		for _, c := range calls {
			want = append(want, c.RequestID)
		}
	}
	corrupt := traffic.Gzip(docs[0])
	corrupt[len(corrupt)/2] ^= 0xff
	plainBad := bytes.Join([][]byte{docs[0], docs[1], []byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"cut`), docs[2], []byte("not json\n"), docs[3], docs[4], docs[5]}, []byte("\n"))
	tests := []struct {
		name   string
		in     []byte
		ids    []string
		reason string
	}{
		{"corrupt member", bytes.Join([][]byte{traffic.Gzip(docs[0], docs[1], docs[2]), corrupt, traffic.Gzip(docs[3], docs[4], docs[5])}, nil), slices.Concat(want[:9], want[9:]), cwlogs.ReasonGzip},
		{"truncated member", bytes.Join([][]byte{traffic.Gzip(docs[0], docs[1], docs[2]), traffic.Gzip(docs[0])[:40], traffic.Gzip(docs[3], docs[4], docs[5])}, nil), want, cwlogs.ReasonGzip},
		{"garbage between members", bytes.Join([][]byte{traffic.Gzip(docs[0], docs[1], docs[2]), []byte("garbage"), traffic.Gzip(docs[3], docs[4], docs[5])}, nil), want, cwlogs.ReasonGzip},
		{"malformed documents in plain JSON", plainBad, want, cwlogs.ReasonJSON},
		{"malformed documents in one gzip member", traffic.Gzip(plainBad), want, cwlogs.ReasonJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ids, st := requestIDs(t, tt.in, DefaultOptions())
			if !slices.Equal(ids, tt.ids) {
				t.Fatalf("ids %q\nwant %q", ids, tt.ids)
			}
			if st.DecodeErrors == 0 || st.ErrorsByReason[tt.reason] != st.DecodeErrors {
				t.Fatalf("stats %+v, want errors of reason %s", st, tt.reason)
			}
		})
	}
}

// A gzip file whose first bytes are damaged is still read as gzip.
func TestReadGzipAfterLeadingDamage(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.Options{Seed: 8})
	evs, calls := g.Events(nil, 5)
	in := append([]byte("\x00\x00junk"), traffic.GzipEnvelope("g", "s", evs)...)
	ids, st := requestIDs(t, in, DefaultOptions())
	if len(ids) != len(calls) || st.ErrorsByReason[cwlogs.ReasonGzip] != 1 {
		t.Fatalf("ids %q, stats %+v: want %d calls and one gzip error", ids, st, len(calls))
	}
}
