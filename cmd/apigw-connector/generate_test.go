package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// runGenerate runs the command in-process and returns stdout and stderr.
func runGenerate(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cmdGenerate(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func readManifest(t *testing.T, path string) traffic.Manifest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m traffic.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return m
}

// parsedCalls decodes generate's output the way the connector does: lines
// with the access-log parser, documents with the CloudWatch Logs decoder first.
func parsedCalls(t *testing.T, format string, data []byte) (calls []accesslog.APICall, controls int) {
	t.Helper()
	p, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		t.Fatal(err)
	}
	parse := func(line []byte) {
		c, err := p.Parse(line)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		calls = append(calls, c)
	}
	if format == genFormatLines {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			parse(sc.Bytes())
		}
		return calls, 0
	}
	st, err := cwlogs.NewDecoder(cwlogs.DefaultOptions()).Decode(data, func(_ *cwlogs.Meta, ev *cwlogs.Event) {
		parse(ev.Message)
	})
	if err != nil {
		t.Fatalf("decode %s output: %v", format, err)
	}
	return calls, st.ControlMessages
}

// checkAgainstManifest asserts that the calls are exactly the manifest's:
// same request ids, each on one of its endpoints, per-endpoint counts equal.
func checkAgainstManifest(t *testing.T, calls []accesslog.APICall, m traffic.Manifest) {
	t.Helper()
	if int64(len(calls)) != m.Calls || len(m.RequestIDs) != len(calls) || len(m.RequestTimes) != len(calls) {
		t.Fatalf("%d calls parsed, manifest says %d calls and lists %d ids, %d times", len(calls), m.Calls, len(m.RequestIDs), len(m.RequestTimes))
	}
	ids := map[string]bool{}
	times := map[string]int64{}
	for i, id := range m.RequestIDs {
		if ids[id] {
			t.Fatalf("manifest lists request id %s twice", id)
		}
		ids[id] = true
		times[id] = m.RequestTimes[i]
	}
	perEndpoint := make([]int64, len(m.Endpoints))
	for _, c := range calls {
		if !ids[c.RequestID] {
			t.Fatalf("parsed call %s is not in the manifest", c.RequestID)
		}
		delete(ids, c.RequestID)
		if got := c.RequestTime.UnixMilli(); got != times[c.RequestID] {
			t.Fatalf("call %s logged at %d ms, manifest says %d", c.RequestID, got, times[c.RequestID])
		}
		found := -1
		for i, e := range m.Endpoints {
			if e.Method == c.Method && e.Host == c.Host && traffic.MatchesTemplate(c.Path, e.CalledTemplate) {
				found = i
				break
			}
		}
		if found < 0 {
			t.Fatalf("call %s %s%s matches no manifest endpoint", c.Method, c.Host, c.Path)
		}
		perEndpoint[found]++
	}
	var sum int64
	for i, e := range m.Endpoints {
		sum += e.Calls
		if perEndpoint[i] != e.Calls {
			t.Errorf("endpoint %s %s%s: %d calls parsed, manifest says %d", e.Method, e.Host, e.CalledTemplate, perEndpoint[i], e.Calls)
		}
	}
	if sum != m.Calls {
		t.Errorf("manifest endpoint calls sum to %d, want %d", sum, m.Calls)
	}
}

func TestGenerateFormatsParseBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format   string
		extra    []string
		controls int
	}{
		{format: genFormatLines},
		{format: genFormatGzip, extra: []string{"--control-message"}, controls: 1},
		{format: genFormatJSON, extra: []string{"--control-message", "--route-keys"}, controls: 1},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out, mpath := filepath.Join(dir, "out"), filepath.Join(dir, "m.json")
			args := append([]string{"--rate", "0", "--count", "1234", "--duration", "0", "--apis", "4", "--endpoints", "6",
				"--error-share", "0.2", "--seed", "42", "--format", tc.format, "--out", out, "--manifest", mpath}, tc.extra...)
			_, stderr, err := runGenerate(t, context.Background(), args...)
			if err != nil {
				t.Fatalf("generate: %v\n%s", err, stderr)
			}
			if !strings.Contains(stderr, "generate: 1234 calls in ") {
				t.Errorf("final line missing or wrong: %q", stderr)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if tc.format == genFormatGzip && !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
				t.Fatalf("cwlogs-gzip output does not start with gzip magic")
			}
			calls, controls := parsedCalls(t, tc.format, data)
			if controls != tc.controls {
				t.Errorf("control messages = %d, want %d", controls, tc.controls)
			}
			m := readManifest(t, mpath)
			if len(m.Endpoints) != 4*6 {
				t.Errorf("manifest has %d endpoints, want 24", len(m.Endpoints))
			}
			checkAgainstManifest(t, calls, m)
			var errs int
			for _, c := range calls {
				if c.Status >= 400 {
					errs++
				}
			}
			if share := float64(errs) / float64(len(calls)); share < 0.12 || share > 0.28 {
				t.Errorf("error share %.2f, want about 0.2", share)
			}
		})
	}
}

func TestGenerateRecordSizes(t *testing.T) {
	t.Parallel()
	// Each cwlogs-json line is one document: its event count must be in range.
	stdout, stderr, err := runGenerate(t, context.Background(), "--rate", "0", "--count", "600", "--seed", "3",
		"--events-per-record", "10-50", "--format", genFormatJSON)
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, stderr)
	}
	dec := cwlogs.NewDecoder(cwlogs.DefaultOptions())
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	total := 0
	for i, l := range lines {
		st, err := dec.Decode([]byte(l), func(*cwlogs.Meta, *cwlogs.Event) {})
		if err != nil {
			t.Fatal(err)
		}
		// Only the last document of a chunk may be short (the remainder).
		if st.Events > 50 || (st.Events < 10 && i != len(lines)-1) {
			t.Errorf("document %d holds %d events, want 10-50", i, st.Events)
		}
		total += st.Events
	}
	if total != 600 {
		t.Errorf("%d events, want 600", total)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	args := []string{"--rate", "0", "--count", "300", "--seed", "9", "--start", "2026-11-24T10:00:00Z"}
	a, _, err := runGenerate(t, context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := runGenerate(t, context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(a) == 0 {
		t.Fatalf("same seed and start gave different output")
	}
	if !strings.Contains(a, `"requestTime":"24/Nov/2026:10:00:00 +0000"`) {
		t.Errorf("--start not applied: %.300s", a)
	}
	c, _, err := runGenerate(t, context.Background(), "--rate", "0", "--count", "300", "--seed", "10", "--start", "2026-11-24T10:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if a == c {
		t.Fatalf("different seeds gave the same output")
	}
}

// TestGeneratePacedCount checks that a paced run writes exactly rate x
// duration calls, with wall-clock timestamps inside the run.
func TestGeneratePacedCount(t *testing.T) {
	t.Parallel()
	before := time.Now().Add(-time.Second)
	stdout, stderr, err := runGenerate(t, context.Background(), "--rate", "300", "--duration", "1s", "--seed", "5")
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, stderr)
	}
	calls, _ := parsedCalls(t, genFormatLines, []byte(stdout))
	if len(calls) != 300 {
		t.Fatalf("%d calls, want 300 (rate 300/s for 1s)\n%s", len(calls), stderr)
	}
	after := time.Now().Add(time.Second)
	for _, c := range calls {
		if c.RequestTime.Before(before) || c.RequestTime.After(after) {
			t.Fatalf("call time %s outside the run [%s, %s]", c.RequestTime, before, after)
		}
	}
	if !slices.IsSortedFunc(calls, func(a, b accesslog.APICall) int { return a.RequestTime.Compare(b.RequestTime) }) {
		t.Errorf("call times go backwards")
	}
}

func TestGenerateCountStopsPacedRun(t *testing.T) {
	t.Parallel()
	stdout, stderr, err := runGenerate(t, context.Background(), "--rate", "1000", "--duration", "0", "--count", "250")
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, stderr)
	}
	if n := strings.Count(stdout, "\n"); n != 250 {
		t.Fatalf("%d lines, want 250", n)
	}
}

func TestGenerateInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	mpath := filepath.Join(t.TempDir(), "m.json")
	stdout, _, err := runGenerate(t, ctx, "--rate", "100", "--duration", "1m", "--manifest", mpath)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 130 {
		t.Fatalf("err = %v, want exit 130", err)
	}
	m := readManifest(t, mpath)
	if n := int64(strings.Count(stdout, "\n")); n != m.Calls || len(m.RequestIDs) != int(n) {
		t.Fatalf("wrote %d lines, manifest says %d calls, %d ids", n, m.Calls, len(m.RequestIDs))
	}
}

func TestGenerateUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "0"}, "--duration 0 needs --count"},
		{[]string{"--rate", "-1"}, "--rate must be"},
		{[]string{"--error-share", "1.5"}, "--error-share must be between 0 and 1"},
		{[]string{"--events-per-record", "50-10"}, "MIN <= MAX"},
		{[]string{"--events-per-record", "x"}, "want N or MIN-MAX"},
		{[]string{"--format", "xml"}, "--format must be"},
		{[]string{"--stream", "s", "--format", "lines"}, "cannot go to a Kinesis stream"},
		{[]string{"--stream", "arn:aws:kinesis:us-east-1:1:table/x"}, "stream name or ARN"},
		{[]string{"--control-message"}, "needs a cwlogs format"},
		{[]string{"--start", "yesterday"}, "RFC 3339"},
		{[]string{"--apis", "0"}, "--apis must be"},
		{[]string{"extra"}, "takes no arguments"},
	} {
		_, stderr, err := runGenerate(t, context.Background(), tc.args...)
		if !errors.Is(err, errUsage) || !strings.Contains(stderr, tc.want) {
			t.Errorf("generate %q: err %v, stderr %q; want usage error mentioning %q", tc.args, err, stderr, tc.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"10-50", 10, 50, true}, {"7", 7, 7, true}, {" 1 - 2 ", 1, 2, true}, {"10000", 10000, 10000, true},
		{"0", 0, 0, false}, {"10001", 0, 0, false}, {"5-4", 0, 0, false}, {"a-b", 0, 0, false}, {"", 0, 0, false},
	} {
		lo, hi, err := parseRange(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (lo != tc.lo || hi != tc.hi)) {
			t.Errorf("parseRange(%q) = %d, %d, %v", tc.in, lo, hi, err)
		}
	}
}

// TestGenerateStream puts generated records to kinesis-mock through the SDK's
// standard environment (AWS_ENDPOINT_URL_KINESIS) and reads every shard back:
// all calls arrive, spread over the shards, in more PutRecords calls than one
// (more than 500 records).
func TestGenerateStream(t *testing.T) { // not parallel: t.Setenv
	ep := testenv.StartKinesisMock(t)
	kc := testenv.KinesisClient(t, ep)
	testenv.CreateStream(t, kc, "gen", 3)
	testenv.SetAWSEnv(t, ep, "")

	mpath := filepath.Join(t.TempDir(), "m.json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, stderr, err := runGenerate(t, ctx, "--stream", "gen", "--rate", "0", "--count", "1500", "--events-per-record", "1-2",
		"--control-message", "--seed", "11", "--manifest", mpath)
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, stderr)
	}
	m := readManifest(t, mpath)
	if m.Records <= putMaxRecords {
		t.Fatalf("only %d records: the test needs more than %d to cross the PutRecords limit", m.Records, putMaxRecords)
	}
	if !strings.Contains(stderr, "to stream gen") {
		t.Errorf("final line: %q", stderr)
	}

	var all []byte
	perShard := map[string]int{}
	var records int
	for _, sh := range testenv.ListShards(t, kc, "gen") {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String("gen"), ShardId: sh.ShardId, ShardIteratorType: "TRIM_HORIZON",
		})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				all = append(all, r.Data...) // gzip members concatenate
				if len(aws.ToString(r.PartitionKey)) != partitionKeyLen {
					t.Fatalf("partition key %q", aws.ToString(r.PartitionKey))
				}
				perShard[aws.ToString(sh.ShardId)]++
				records++
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	if records != int(m.Records)+1 { // + the control message
		t.Errorf("read %d records, want %d + 1 control message", records, m.Records)
	}
	if len(perShard) != 3 {
		t.Errorf("records landed on %d shards, want all 3 (random partition keys): %v", len(perShard), perShard)
	}
	calls, controls := parsedCalls(t, genFormatGzip, all)
	if controls != 1 {
		t.Errorf("control messages = %d, want 1", controls)
	}
	checkAgainstManifest(t, calls, m)
}

// --count alone asks for a file of N calls: no pacing, no --duration cut,
// and the summary counts plain lines as lines.
func TestGenerateCountAloneIsUnpacedAndNamesItsUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args         []string
		rate         float64
		duration     time.Duration
		summaryUnits string
	}{
		{[]string{"--count", "300"}, 0, 0, "300 calls in 300 lines (lines,"},
		{[]string{"--count", "300", "--format", "cwlogs-json", "--events-per-record", "10"}, 0, 0, "300 calls in 30 subscription documents (cwlogs-json,"},
		{[]string{"--count", "300", "--rate", "1000"}, 1000, 10 * time.Second, "300 calls in 300 lines"},
		{[]string{"--count", "300", "--duration", "1m"}, 0, time.Minute, "300 calls in 300 lines"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			o, err := parseGenerateFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if o.rate != tt.rate || o.duration != tt.duration {
				t.Fatalf("rate %v duration %s, want %v %s", o.rate, o.duration, tt.rate, tt.duration)
			}
			_, stderr, err := runGenerate(t, context.Background(), tt.args...)
			if err != nil {
				t.Fatalf("generate: %v\n%s", err, stderr)
			}
			if !strings.Contains(stderr, tt.summaryUnits) || strings.Contains(stderr, "records") {
				t.Fatalf("summary does not say %q (or says records):\n%s", tt.summaryUnits, stderr)
			}
		})
	}
}
