package kinesis

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// TestSharedRequestIDsAndReReadReachTheNodeOnce runs the real chain (Kinesis
// emulator -> source -> pipeline -> node client -> devnode): two calls sharing
// a client-set requestId both reach the node; a second application reading
// the stream again from TRIM_HORIZON (what a lost checkpoint does) sends the
// same node ids, so the inventory stays as it was.
func TestSharedRequestIDsAndReReadReachTheNodeOnce(t *testing.T) {
	kep := testenv.StartKinesisMock(t)
	dep := testenv.StartDynalite(t)
	awsCfg := testenv.AWSConfig(t, kep, dep)
	kc := kinesis.NewFromConfig(awsCfg)
	stream := fmt.Sprintf("nodeid-%d", os.Getpid())
	testenv.CreateStream(t, kc, stream, 1)
	chain := testenv.StartChain(t, testLogger(t))

	line := func(path string) string {
		return fmt.Sprintf(`{"requestId":"client-set-id","httpMethod":"GET","path":%q,"status":"200","domainName":"api.example.com","sourceIp":"203.0.113.7","requestTimeEpoch":"1795515330000"}`, path)
	}
	testenv.PutRecords(t, kc, stream, testenv.Record{PartitionKey: "pk", Data: traffic.GzipEnvelope("/aws/apigateway/shop", "s", []traffic.LogEvent{
		{ID: fmt.Sprintf("%056d", 1), Timestamp: 1795515330000, Message: line("/a")},
		{ID: fmt.Sprintf("%056d", 2), Timestamp: 1795515330000, Message: line("/b")},
	})})

	// read runs one application (its own lease table) until the node has seen
	// want request messages, accepted or refused as duplicates.
	read := func(app string, want int64) {
		cfg := DefaultConfig()
		cfg.Stream, cfg.ApplicationName, cfg.WorkerID = stream, app, app
		cfg.FailoverTime, cfg.PollInterval, cfg.CheckpointInterval, cfg.ShutdownGrace = testFailover, testPoll, testCheckpoint, testGrace
		cfg.ShardSyncInterval = time.Second
		src, err := New(cfg, awsCfg, chain.Pipeline, prometheus.NewRegistry(), testLogger(t))
		if err != nil {
			t.Fatalf("new source: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := src.Start(ctx); err != nil {
			t.Fatalf("start source: %v", err)
		}
		defer func() {
			sctx, scancel := context.WithTimeout(context.Background(), waitLong)
			defer scancel()
			if err := src.Shutdown(sctx); err != nil {
				t.Errorf("shut down source: %v", err)
			}
		}()
		eventually(t, waitLong, app+" delivering both calls", func() bool {
			st := chain.Node.Stats()
			return st.Requests+st.Duplicates >= want
		})
	}

	read("first", 2)
	inv := chain.Node.Inventory()
	if st := chain.Node.Stats(); st.Completed != 2 || len(inv) != 2 || inv[0].Path != "/a" || inv[1].Path != "/b" {
		t.Fatalf("node completed %d calls, inventory %+v: want both calls sharing a requestId", st.Completed, inv)
	}
	read("reread", 4) // its own lease table: it starts again at TRIM_HORIZON
	if got := chain.Node.Inventory(); !testenv.SameCalls(got, inv) {
		t.Fatalf("inventory changed by re-reading the stream:\n%+v\n%+v", inv, got)
	}
	if st := chain.Node.Stats(); st.Completed != 2 || st.Duplicates != 2 || st.OwnHost != 0 {
		t.Fatalf("node stats %+v: want the re-read's 2 calls refused as duplicates", st)
	}
}
