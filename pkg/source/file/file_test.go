package file

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

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
		{"gzip lines", traffic.Gzip(lines), pipeline.FormatLines, 5},
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
	st, err := Read(context.Background(), "big", bytes.NewReader(big), o, func(pipeline.Batch) error { t.Error("oversized document emitted"); return nil })
	if err != nil || st.DecodeErrors != 1 || st.ErrorsByReason[cwlogs.ReasonTooLarge] != 1 {
		t.Fatalf("oversized document: %v %+v, want one too_large skipped", err, st)
	}
	st, err = Read(context.Background(), "bad", bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}), DefaultOptions(), func(pipeline.Batch) error { return nil })
	if err != nil || st.ErrorsByReason[cwlogs.ReasonGzip] != 1 {
		t.Fatalf("corrupt gzip: %v %+v, want one gzip error counted", err, st)
	}
}

// The Lambda template's failure queue holds invocation records whose
// requestPayload is the original CloudWatch Logs event; replay reads them, and
// the bare events, as they are (one per line, pretty-printed or gzip).
func TestReadLambdaEvents(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.Options{Seed: 3})
	evs1, _ := g.Events(nil, 2)
	evs2, _ := g.Events(nil, 3)
	gz1, gz2 := traffic.GzipEnvelope("grp", "s1", evs1), traffic.GzipEnvelope("grp", "s2", evs2)
	event := func(gzData []byte) string {
		return `{"awslogs":{"data":"` + base64.StdEncoding.EncodeToString(gzData) + `"}}`
	}
	record := func(reqID string, gzData []byte) string {
		return `{"version":"1.0","timestamp":"2026-11-24T10:15:30.000Z",` +
			`"requestContext":{"requestId":"` + reqID + `","functionArn":"arn:aws:lambda:eu-west-1:123456789012:function:apigw-connector:$LATEST","condition":"RetriesExhausted","approximateInvokeCount":3},` +
			`"requestPayload":` + event(gzData) + `,` +
			`"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},` +
			`"responsePayload":{"errorMessage":"deliver subscription event: 3 of 3 calls: calls not delivered before the invocation deadline","errorType":"wrapError"}}`
	}
	pretty := func(s string) string {
		var buf bytes.Buffer
		if err := json.Indent(&buf, []byte(s), "", "  "); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	tests := []struct {
		name     string
		in       []byte
		wantIDs  []string
		wantData [][]byte
	}{
		{"one event", []byte(event(gz1)), []string{"x:1"}, [][]byte{gz1}},
		{"events one per line", []byte(event(gz1) + "\n" + event(gz2) + "\n"), []string{"x:1", "x:2"}, [][]byte{gz1, gz2}},
		{"destination records", []byte(record("req-a", gz1) + "\n" + record("req-b", gz2)), []string{"x:req-a", "x:req-b"}, [][]byte{gz1, gz2}},
		{"pretty-printed record", []byte(pretty(record("req-a", gz1))), []string{"x:req-a"}, [][]byte{gz1}},
		{"gzip records", traffic.Gzip([]byte(record("req-a", gz1) + "\n" + record("req-b", gz2) + "\n")), []string{"x:req-a", "x:req-b"}, [][]byte{gz1, gz2}},
		{"record without request id", []byte(`{"requestPayload":` + event(gz2) + `}`), []string{"x:1"}, [][]byte{gz2}},
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
			if st.Batches != len(tt.wantIDs) || len(got) != len(tt.wantIDs) {
				t.Fatalf("%d batches (stats %d), want %d", len(got), st.Batches, len(tt.wantIDs))
			}
			for i, b := range got {
				if b.Format != pipeline.FormatCloudWatchLogs || len(b.Records) != 1 || b.Records[0].ID != tt.wantIDs[i] {
					t.Fatalf("batch %d: format %v, records %d, id %q; want one CloudWatch Logs record %q", i, b.Format, len(b.Records), b.Records[0].ID, tt.wantIDs[i])
				}
				if !bytes.Equal(b.Records[0].Data, tt.wantData[i]) {
					t.Fatalf("batch %d: data is not the event's decoded awslogs.data", i)
				}
			}
		})
	}
}

func TestReadLambdaEventErrors(t *testing.T) {
	t.Parallel()
	data := base64.StdEncoding.EncodeToString(traffic.GzipEnvelope("g", "s", nil))
	good := `{"awslogs":{"data":"` + data + `"}}`
	tests := []struct {
		name, in, want string
		batches        int
	}{
		{"not base64", `{"awslogs":{"data":"%%%"}}` + "\n" + good, "not base64", 1},
		{"other payload after an event", good + "\n" + `{"requestPayload":{"Records":[]}}` + "\n" + good, "value 2 is neither", 2},
		{"truncated", good[:len(good)-1] + "\n" + good, "malformed JSON document", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			o := DefaultOptions()
			o.Log = slog.New(slog.NewTextHandler(&logs, nil))
			n := 0
			st, err := Read(context.Background(), "x", strings.NewReader(tt.in), o, func(pipeline.Batch) error { n++; return nil })
			if err != nil || st.DecodeErrors != 1 || n != tt.batches {
				t.Fatalf("err %v, stats %+v, %d batches; want 1 decode error and %d batches", err, st, n, tt.batches)
			}
			if !strings.Contains(logs.String(), tt.want) {
				t.Fatalf("log %q does not mention %q", logs.String(), tt.want)
			}
		})
	}
	o := DefaultOptions()
	o.MaxDocumentBytes = 10
	if st, _ := Read(context.Background(), "x", strings.NewReader(good), o, func(pipeline.Batch) error { return nil }); st.DecodeErrors != 1 {
		t.Fatalf("oversized event: %+v", st)
	}
}

// An access-log line that merely mentions awslogs is still a line.
func TestReadLineMentioningAWSLogsIsALine(t *testing.T) {
	t.Parallel()
	line := `{"requestId":"r1","httpMethod":"GET","path":"/awslogs","userAgent":"\"awslogs\":{x}","status":"200"}` + "\n"
	var got []pipeline.Batch
	if _, err := Read(context.Background(), "x", strings.NewReader(line), DefaultOptions(), func(b pipeline.Batch) error {
		got = append(got, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Format != pipeline.FormatLines {
		t.Fatalf("batches %+v, want one of access-log lines", got)
	}
}
