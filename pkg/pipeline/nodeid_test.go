package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// calls records every delivered call, in arrival order.
type callRecorder struct {
	mu    sync.Mutex
	calls []accesslog.APICall
}

func (r *callRecorder) Deliver(_ context.Context, c *accesslog.APICall) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, *c)
	return nil
}

// nodeIDs returns the delivered node ids, sorted.
func (r *callRecorder) nodeIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, c := range r.calls {
		ids = append(ids, c.NodeID)
	}
	sort.Strings(ids)
	return ids
}

// mapDedup is a Deduper over a map.
type mapDedup struct {
	mu sync.Mutex
	m  map[string]bool
}

func (d *mapDedup) Delivered(id string) bool { d.mu.Lock(); defer d.mu.Unlock(); return d.m[id] }
func (d *mapDedup) MarkDelivered(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]bool{}
	}
	d.m[id] = true
}

func submit(t *testing.T, p *pipeline.Pipeline, b pipeline.Batch) pipeline.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.Submit(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// sharedIDLine is a documented-format line whose requestId a client chose.
func sharedIDLine(path string) string {
	return `{"requestId":"client-chosen-id","httpMethod":"GET","path":"` + path + `","status":"200","domainName":"api.example.com","sourceIp":"203.0.113.7","requestTimeEpoch":"1795515330000"}`
}

func envelopeRecord(id string, events ...traffic.LogEvent) pipeline.Record {
	return pipeline.Record{ID: id, Data: traffic.GzipEnvelope("/aws/apigateway/access", "stream-1", events)}
}

// TestNodeIDPerLogEvent: two calls sharing a client-set requestId are two
// node ids; delivering the same events again gives the same ids.
func TestNodeIDPerLogEvent(t *testing.T) {
	t.Parallel()
	same := sharedIDLine("/pets/1")
	batches := map[string]pipeline.Batch{
		"envelope events": {Source: "test", Records: []pipeline.Record{envelopeRecord("r0",
			traffic.LogEvent{ID: "37190000000000000000000000000000000000000000000000000001", Timestamp: 1, Message: sharedIDLine("/pets/1")},
			traffic.LogEvent{ID: "37190000000000000000000000000000000000000000000000000002", Timestamp: 1, Message: sharedIDLine("/pets/2")},
			// The very same line logged as a second event is a second call.
			traffic.LogEvent{ID: "37190000000000000000000000000000000000000000000000000003", Timestamp: 1, Message: sharedIDLine("/pets/2")},
		)}},
		"plain lines": {Source: "test", Format: pipeline.FormatLines, Records: []pipeline.Record{
			{ID: "f:1", Data: []byte(same + "\n" + sharedIDLine("/pets/2") + "\n" + same + "\n")},
		}},
		"extracted lines": {Source: "test", Records: []pipeline.Record{
			{ID: "0", Data: []byte(same + "\n" + sharedIDLine("/pets/2") + "\n" + same + "\n")},
		}},
	}
	for name, b := range batches {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var first []string
			for round := range 2 { // the same input delivered again, to a fresh pipeline
				rec := &callRecorder{}
				p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 16, Workers: 2})
				if o := submit(t, p, b); o.Delivered != 3 {
					t.Fatalf("round %d: outcome %+v, want 3 delivered", round, o)
				}
				ids := rec.nodeIDs()
				for i, id := range ids {
					if !strings.HasPrefix(id, "client-chosen-id-") || len(id) != len("client-chosen-id-")+24 {
						t.Fatalf("node id %q: want client-chosen-id-<24 hex>", id)
					}
					if i > 0 && ids[i-1] == id {
						t.Fatalf("two events share node id %q: %v", id, ids)
					}
				}
				if round == 1 && fmt.Sprint(ids) != fmt.Sprint(first) {
					t.Fatalf("delivered again, node ids changed:\n%v\n%v", first, ids)
				}
				first = ids
			}
		})
	}
}

func TestNodeIDPrefix(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 100)
	tests := []struct {
		name, fields, prefix string
	}{
		{"extendedRequestId wins", `"requestId":"r1","extendedRequestId":"Q8NnAiztIAMEV4w="`, "Q8NnAiztIAMEV4w-"},
		{"requestId", `"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef"`, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef-"},
		{"non-token bytes dropped", `"requestId":"a b\"c/d(e)"`, "abcde-"},
		{"at most 64 bytes", `"requestId":"` + long + `"`, long[:64] + "-"},
		{"no id: hash only", `"requestId":"-"`, ""},
		{"nothing left: hash only", `"requestId":"()/"`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &callRecorder{}
			p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 4, Workers: 1})
			line := `{` + tc.fields + `,"httpMethod":"GET","path":"/p","status":"200","domainName":"api.example.com"}`
			submit(t, p, pipeline.Batch{Source: "test", Format: pipeline.FormatLines, Records: []pipeline.Record{{ID: "1", Data: []byte(line)}}})
			ids := rec.nodeIDs()
			if len(ids) != 1 {
				t.Fatalf("delivered %v", ids)
			}
			hash, ok := strings.CutPrefix(ids[0], tc.prefix)
			if !ok || len(hash) != 24 || strings.Trim(hash, "0123456789abcdef") != "" {
				t.Fatalf("node id %q, want %q + 24 hex digits", ids[0], tc.prefix)
			}
			// devnode maps node ids back to log request ids for the end-to-end checks.
			if got := devnode.LogRequestID(ids[0]); got != strings.TrimSuffix(tc.prefix, "-") {
				t.Fatalf("devnode.LogRequestID(%q) = %q, want %q", ids[0], got, strings.TrimSuffix(tc.prefix, "-"))
			}
			if c := rec.calls[0]; tc.prefix != "" && c.ExtendedRequestID == "" && devnode.AsNodeIDPrefix(c.RequestID)+"-" != tc.prefix {
				t.Fatalf("devnode.AsNodeIDPrefix(%q) disagrees with the pipeline's %q", c.RequestID, tc.prefix)
			}
		})
	}
}

// TestDedupKeysOnNodeID: a Firehose retry carrying an already delivered call
// and a new call with the same requestId skips the first and delivers the second.
func TestDedupKeysOnNodeID(t *testing.T) {
	t.Parallel()
	rec := &callRecorder{}
	p, _ := newPipeline(t, rec, pipeline.Config{MaxBufferedCalls: 16, Workers: 2})
	d := &mapDedup{}
	a := traffic.LogEvent{ID: "37190000000000000000000000000000000000000000000000000001", Timestamp: 1, Message: sharedIDLine("/a")}
	b := traffic.LogEvent{ID: "37190000000000000000000000000000000000000000000000000002", Timestamp: 1, Message: sharedIDLine("/b")}
	if o := submit(t, p, pipeline.Batch{Source: "firehose", Dedup: d, Records: []pipeline.Record{envelopeRecord("0", a)}}); o.Delivered != 1 {
		t.Fatalf("first request: %+v", o)
	}
	o := submit(t, p, pipeline.Batch{Source: "firehose", Dedup: d, Records: []pipeline.Record{envelopeRecord("0", a), envelopeRecord("1", b)}})
	if o.Delivered != 1 || o.Duplicates != 1 {
		t.Fatalf("retry: outcome %+v, want the new call delivered and the old one skipped", o)
	}
	if len(rec.calls) != 2 || rec.calls[1].Path != "/b" {
		t.Fatalf("delivered %+v", rec.calls)
	}
}

func hostPipeline(t *testing.T, rules pipeline.HostRules) (*callRecorder, *pipeline.Pipeline, *prometheus.Registry, *syncBuf) {
	t.Helper()
	rec := &callRecorder{}
	parser, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(pipeline.Config{MaxBufferedCalls: 16, Workers: 2, Hosts: rules}, rec,
		cwlogs.NewDecoder(cwlogs.DefaultOptions()), parser, reg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return rec, p, reg, logs
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

var _ io.Writer = (*syncBuf)(nil)

// TestHostRule: the log's domainName, else the settings, else what the apiId
// and region give, else the call is skipped (no_host): never a guess.
func TestHostRule(t *testing.T) {
	t.Parallel()
	// AWS's example REST format: no domainName.
	const awsREST = `{"requestId":"r","extendedRequestId":"Q8NnAiztIAMEV4w=","ip":"203.0.113.7","caller":"-","user":"-","requestTime":"24/Nov/2026:10:15:30 +0000","httpMethod":"GET","resourcePath":"/pets","status":"200","protocol":"HTTP/1.1","responseLength":"12"`
	rules := pipeline.HostRules{DefaultHost: "default.example.com", HostsByLogGroup: map[string]string{"/aws/apigateway/shop": "shop.example.com"}, Region: "eu-west-1"}
	tests := []struct {
		name     string
		rules    pipeline.HostRules
		group    string
		line     string
		wantHost string // "" = skipped
	}{
		{"domainName wins", rules, "/aws/apigateway/shop", awsREST + `,"domainName":"api.example.com"}`, "api.example.com"},
		{"log group map", rules, "/aws/apigateway/shop", awsREST + `}`, "shop.example.com"},
		{"default host", rules, "/aws/apigateway/other", awsREST + `}`, "default.example.com"},
		{"apiId and region", pipeline.HostRules{Region: "eu-west-1"}, "/aws/apigateway/other", awsREST + `,"apiId":"a1b2c3d4e5"}`, "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"},
		{"execution-log group name and region", pipeline.HostRules{Region: "us-east-1"}, "API-Gateway-Execution-Logs_a1b2c3d4e5/prod", awsREST + `}`, "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"},
		{"apiId without a region", pipeline.HostRules{}, "/aws/apigateway/other", awsREST + `,"apiId":"a1b2c3d4e5"}`, ""},
		{"nothing", pipeline.HostRules{}, "/aws/apigateway/other", awsREST + `}`, ""},
		{"a domainName that is no host", pipeline.HostRules{}, "/aws/apigateway/other", awsREST + `,"domainName":"a b"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, p, reg, logs := hostPipeline(t, tc.rules)
			ev := func(i int) traffic.LogEvent {
				return traffic.LogEvent{ID: fmt.Sprintf("%056d", i), Timestamp: 1, Message: tc.line}
			}
			b := pipeline.Batch{Source: "test", Records: []pipeline.Record{
				{ID: "0", Data: traffic.GzipEnvelope(tc.group, "s", []traffic.LogEvent{ev(1), ev(2)})},
				{ID: "1", Data: traffic.GzipEnvelope(tc.group, "s", []traffic.LogEvent{ev(3)})},
			}}
			o := submit(t, p, b)
			if tc.wantHost != "" {
				if o.Delivered != 3 || rec.calls[0].Host != tc.wantHost {
					t.Fatalf("outcome %+v, calls %+v: want 3 calls to %s", o, rec.calls, tc.wantHost)
				}
				return
			}
			if o.Delivered != 0 || o.ParseErrors != 3 || len(rec.calls) != 0 {
				t.Fatalf("outcome %+v, calls %+v: want 3 skipped", o, rec.calls)
			}
			mf, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got float64
			for _, f := range mf {
				if f.GetName() == "apigw_connector_parse_errors_total" {
					for _, m := range f.GetMetric() {
						if m.GetLabel()[0].GetValue() == "no_host" {
							got = m.GetCounter().GetValue()
						}
					}
				}
			}
			if got != 3 {
				t.Fatalf("parse_errors_total{reason=no_host} = %v, want 3", got)
			}
			if n := strings.Count(logs.String(), "skipping calls whose access-log lines"); n != 1 {
				t.Fatalf("warned %d times, want once per log group:\n%s", n, logs)
			}
			if !strings.Contains(logs.String(), `\"domainName\":\"$context.domainName\"`) || !strings.Contains(logs.String(), tc.group) {
				t.Fatalf("warning lacks the fix or the log group:\n%s", logs)
			}
		})
	}
}

func TestHostRulesValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rules pipeline.HostRules
		want  string
	}{
		{pipeline.HostRules{DefaultHost: "https://api.example.com"}, "APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST"},
		{pipeline.HostRules{HostsByLogGroup: map[string]string{"g": "a b"}}, "access_log.hosts_by_log_group"},
		{pipeline.HostRules{HostsByLogGroup: map[string]string{"": "a.example.com"}}, "empty log group"},
		{pipeline.HostRules{Region: "EU West"}, "access_log.region"},
	}
	for _, tc := range tests {
		err := pipeline.Config{MaxBufferedCalls: 1, Workers: 1, Hosts: tc.rules}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.rules, err, tc.want)
		}
	}
	if err := (pipeline.Config{MaxBufferedCalls: 1, Workers: 1, Hosts: pipeline.HostRules{DefaultHost: "api.example.com:8443", Region: "us-east-1"}}).Validate(); err != nil {
		t.Fatal(err)
	}
}
