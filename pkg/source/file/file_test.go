package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func TestReadDetectsContent(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.Options{Seed: 1})
	evs, _ := g.Events(nil, 3)
	env := traffic.Envelope("grp", "str", evs)
	var lines []byte
	for range 5 {
		lines = append(append(lines, g.Line()...), '\n')
	}
	exported := []byte("2026-11-24T10:15:30.000Z " + strings.TrimSpace(string(g.Line())) + "\n")
	pretty := []byte("{\n  \"messageType\": \"DATA_MESSAGE\",\n  \"logEvents\": []\n}\n")
	tests := []struct {
		name       string
		in         []byte
		wantFormat pipeline.Format
		wantLines  int
	}{
		{"gzip envelope", traffic.GzipEnvelope("grp", "str", evs), pipeline.FormatCloudWatchLogs, 0},
		{"concatenated gzip envelopes", traffic.Gzip(env, env), pipeline.FormatCloudWatchLogs, 0},
		{"plain envelope", env, pipeline.FormatCloudWatchLogs, 0},
		{"pretty-printed envelope", pretty, pipeline.FormatCloudWatchLogs, 0},
		{"plain lines", lines, pipeline.FormatLines, 5},
		{"gzip lines", gz(lines), pipeline.FormatLines, 5},
		{"export with timestamps", exported, pipeline.FormatLines, 1},
		{"blank lines skipped", []byte("\n\n" + string(lines) + "\n\n"), pipeline.FormatLines, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []pipeline.Batch
			st, err := Read(context.Background(), "x", bytes.NewReader(tt.in), DefaultOptions(), func(b pipeline.Batch) error {
				got = append(got, b)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Format != tt.wantFormat {
				t.Fatalf("batches %d (format %v), want 1 of format %v", len(got), got, tt.wantFormat)
			}
			if st.Lines != tt.wantLines {
				t.Fatalf("lines %d, want %d", st.Lines, tt.wantLines)
			}
			if tt.wantFormat == pipeline.FormatLines {
				for _, l := range bytes.Split(bytes.TrimSpace(got[0].Records[0].Data), []byte("\n")) {
					if len(l) == 0 || l[0] != '{' {
						t.Fatalf("line %q does not start at the JSON object", l)
					}
				}
			}
		})
	}
}

func TestReadChunksLines(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.Options{Seed: 2})
	var lines []byte
	for range 1001 {
		lines = append(append(lines, g.Line()...), '\n')
	}
	o := DefaultOptions()
	o.ChunkLines = 100
	n := 0
	st, err := Read(context.Background(), "x", bytes.NewReader(lines), o, func(b pipeline.Batch) error {
		n += bytes.Count(b.Records[0].Data, []byte("\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Batches != 11 || n != 1001 || st.Lines != 1001 {
		t.Fatalf("batches %d, lines %d/%d", st.Batches, n, st.Lines)
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.MaxDocumentBytes = 100
	big := traffic.Envelope("g", "s", []traffic.LogEvent{{ID: "1", Message: strings.Repeat("x", 500)}})
	if _, err := Read(context.Background(), "big", bytes.NewReader(big), o, func(pipeline.Batch) error { return nil }); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized document: %v", err)
	}
	if _, err := Read(context.Background(), "bad", bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}), DefaultOptions(), func(pipeline.Batch) error { return nil }); err == nil {
		t.Fatal("corrupt gzip accepted")
	}
}
