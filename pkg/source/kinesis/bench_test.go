package kinesis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// kinesisReplay answers GetShardIterator and GetRecords over Kinesis's JSON protocol with
// pre-encoded pages of real CloudWatch Logs records, total records in all, then closes the
// shard. It stands in for the service only in the benchmark, where an emulator's own cost would
// swamp the consumer's.
type kinesisReplay struct {
	page    []byte // GetRecords body with perPage records and a next iterator
	perPage int
	total   int
	served  atomic.Int64
	last    []byte // the final, shard-closing page
}

func newKinesisReplay(recs []traffic.Record, total int) *kinesisReplay {
	type rec struct {
		Data           string `json:"Data"`
		PartitionKey   string `json:"PartitionKey"`
		SequenceNumber string `json:"SequenceNumber"`
	}
	mk := func(n int, next bool) []byte {
		body := map[string]any{"MillisBehindLatest": 0}
		rs := make([]rec, n)
		for i := range rs {
			rs[i] = rec{Data: base64.StdEncoding.EncodeToString(recs[i%len(recs)].Data), PartitionKey: "k",
				SequenceNumber: "4962" + strconv.Itoa(100000000+i)}
		}
		body["Records"] = rs
		if next {
			body["NextShardIterator"] = "it"
		} else {
			body["ChildShards"] = []any{}
		}
		b, _ := json.Marshal(body)
		return b
	}
	per := 1000
	return &kinesisReplay{page: mk(per, true), perPage: per, total: total, last: mk(0, false)}
}

func (k *kinesisReplay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch r.Header.Get("X-Amz-Target") {
	case "Kinesis_20131202.GetShardIterator":
		_, _ = w.Write([]byte(`{"ShardIterator":"it"}`))
	case "Kinesis_20131202.GetRecords":
		if int(k.served.Load()) >= k.total {
			_, _ = w.Write(k.last)
			return
		}
		k.served.Add(int64(k.perPage))
		_, _ = w.Write(k.page)
	default:
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
	}
}

// benchHandle is a lease held for the whole benchmark: checkpoints are counted, not stored.
type benchHandle struct {
	checkpoints atomic.Int64
	ended       chan struct{}
	lost        chan struct{}
}

func (h *benchHandle) ShardID() string             { return "shardId-000000000000" }
func (h *benchHandle) Checkpoint() (string, int64) { return PositionTrimHorizon, 0 }
func (h *benchHandle) Lost() <-chan struct{}       { return h.lost }
func (h *benchHandle) SaveCheckpointAt(context.Context, string, int64) error {
	h.checkpoints.Add(1)
	return nil
}
func (h *benchHandle) ShardEnded(context.Context, []string) error { close(h.ended); return nil }

type noopForwarder struct{}

func (noopForwarder) Deliver(context.Context, *accesslog.APICall) error { return nil }

// BenchmarkConsumer measures the consumer's per-record cost: GetRecords over HTTP (SDK
// unmarshalling included), gzip + envelope decode, access-log parse, pipeline hand-off and
// ordered checkpoint bookkeeping. The node is a no-op forwarder; one op is one Kinesis record.
func BenchmarkConsumer(b *testing.B) {
	for _, events := range []int{20, 100} {
		b.Run(fmt.Sprintf("events_per_record=%d", events), func(b *testing.B) {
			recs := traffic.New(traffic.Options{Seed: 1}).Records(64, events, events)
			var size int
			for _, r := range recs {
				size += len(r.Data)
			}
			avg := size / len(recs)
			b.SetBytes(int64(avg))

			srv := httptest.NewServer(newKinesisReplay(recs, b.N))
			defer srv.Close()
			kc := kinesis.NewFromConfig(aws.Config{
				Region:      "us-east-1",
				Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCH", "secret", ""),
			}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(srv.URL) })

			reg := prometheus.NewRegistry()
			log := testLogger(b)
			pcfg := pipeline.DefaultConfig()
			pipe, err := pipeline.New(pcfg, noopForwarder{}, cwlogs.NewDecoder(cwlogs.DefaultOptions()), newParser(b), reg, log)
			if err != nil {
				b.Fatal(err)
			}
			if err := pipe.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer pipe.Shutdown(context.Background())
			m, err := newMetrics(reg)
			if err != nil {
				b.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Stream = "bench"
			cfg.PollInterval = 0 // measure the consumer, not the per-shard call limit
			cfg.CheckpointInterval = 100 * time.Millisecond
			st := parseStream(cfg.Stream)
			d := &readerDeps{cfg: cfg, api: kc, stream: st, lister: &shardLister{api: kc, stream: st},
				submit: submitterFunc(pipe), m: m, log: log, hardStop: make(chan struct{})}
			h := &benchHandle{ended: make(chan struct{}), lost: make(chan struct{})}

			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			newShardRun(d, h).run(context.Background())
			elapsed := time.Since(start)
			b.StopTimer()
			select {
			case <-h.ended:
			default:
				b.Fatal("shard did not end")
			}
			n := float64(((b.N + 999) / 1000) * 1000)
			b.ReportMetric(n/elapsed.Seconds(), "records/s")
			b.ReportMetric(n*float64(events)/elapsed.Seconds(), "calls/s")
			b.ReportMetric(n*float64(avg)/elapsed.Seconds()/1e6, "MB/s_compressed")
		})
	}
}
