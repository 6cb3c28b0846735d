package firehose

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "test-access-key-0123456789"

// env is the real chain over loopback: Firehose-like client -> receiver ->
// pipeline -> node client -> devnode.
type env struct {
	t    testing.TB
	node *devnode.Server
	pipe *pipeline.Pipeline
	rcv  *Receiver
	reg  *prometheus.Registry
	logs *testkit.SyncBuffer
	url  string
	hc   *http.Client
}

func testConfig() Config {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:0"
	c.AccessKeys = []string{testKey}
	c.AckDeadline = 5 * time.Second
	return c
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := testenv.StartChain(t, log)
	e := &env{t: t, reg: c.Registry, logs: logs, node: c.Node, pipe: c.Pipeline}
	var err error
	e.rcv, err = New(cfg, e.pipe, e.reg, log)
	if err != nil {
		t.Fatalf("create receiver: %v", err)
	}
	e.rcv.keys.checkEvery = 0
	if err := e.rcv.Start(context.Background()); err != nil {
		t.Fatalf("start receiver: %v", err)
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
	}
	e.url = scheme + "://" + e.rcv.Addr().String() + cfg.Path
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	e.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// Runs before the chain's cleanup: the receiver stops before the pipeline.
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.rcv.Shutdown(ctx); err != nil {
			t.Errorf("shut down receiver: %v", err)
		}
		if strings.Contains(logs.String(), testKey) {
			t.Errorf("an access key was logged")
		}
	})
	return e
}

// delivery is what Firehose would send.
type delivery struct {
	id      string
	records [][]byte
	gzip    bool              // Content-Encoding: gzip
	key     *string           // nil: testKey; pointer to "" sends an empty header
	noKey   bool              // no access-key header at all
	header  map[string]string // extra or overriding headers ("" value deletes)
	body    []byte            // overrides the generated body
}

func firehoseBody(id string, records [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"requestId":`)
	j, _ := json.Marshal(id)
	b.Write(j)
	b.WriteString(`,"timestamp":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `,"records":[`)
	for i, r := range records {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"data":"` + base64.StdEncoding.EncodeToString(r) + `"}`)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

type reply struct {
	status int
	body   ackBody
	raw    string
}

// post sends one delivery attempt as Firehose does.
func (e *env) post(d delivery) reply {
	e.t.Helper()
	body := d.body
	if body == nil {
		body = firehoseBody(d.id, d.records)
	}
	if d.gzip {
		body = gz(body)
	}
	req, err := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("build request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
	req.Header.Set(HeaderRequestID, d.id)
	req.Header.Set(HeaderSourceARN, "arn:aws:firehose:us-east-1:123456789012:deliverystream/apigw")
	req.Header.Set("X-Amz-Firehose-Common-Attributes", `{"commonAttributes":{}}`)
	if d.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	switch {
	case d.noKey:
	case d.key != nil:
		req.Header.Set(HeaderAccessKey, *d.key)
	default:
		req.Header.Set(HeaderAccessKey, testKey)
	}
	for k, v := range d.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("post delivery: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		e.t.Errorf("reply %d is not Firehose JSON: %q", resp.StatusCode, raw)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		e.t.Errorf("reply Content-Type %q, want application/json", resp.Header.Get("Content-Type"))
	}
	return r
}

// deliverUntilAcked retries the whole batch on any non-200, as Firehose does.
func (e *env) deliverUntilAcked(d delivery, attempts int) []int {
	e.t.Helper()
	var statuses []int
	for range attempts {
		r := e.post(d)
		statuses = append(statuses, r.status)
		if r.status == http.StatusOK {
			if r.body.RequestID != d.id {
				e.t.Fatalf("ack carries requestId %q, want %q", r.body.RequestID, d.id)
			}
			return statuses
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("delivery %s not acknowledged after %d attempts: %v", d.id, attempts, statuses)
	return statuses
}

// assertDeliveredOnce checks that every call reached the node exactly once.
func (e *env) assertDeliveredOnce(calls []traffic.Call) {
	e.t.Helper()
	testenv.AssertDeliveredOnce(e.t, e.node, calls)
}

func (e *env) counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// gen returns n generated records (gzip documents) and their calls.
func gen(seed int64, n, events int) ([][]byte, []traffic.Call) {
	o := traffic.DefaultOptions()
	o.Seed = seed
	g := traffic.New(o)
	var recs [][]byte
	var calls []traffic.Call
	for _, r := range g.Records(n, events, events) {
		recs = append(recs, r.Data)
		calls = append(calls, r.Calls...)
	}
	return recs, calls
}
