package kinesis

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/lease"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// TestEmulatorEdges runs the shard-deletion and KPL scenarios on one kinesis-mock and dynalite.
func TestEmulatorEdges(t *testing.T) {
	kep := testenv.StartKinesisMock(t)
	dep := testenv.StartDynalite(t)

	// A deleted stream's shards answer ResourceNotFoundException: each reader ends its shard
	// (SHARD_END, no children) once what it read settled, instead of retrying forever.
	t.Run("stream_deleted", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 2)
		var mu sync.Mutex
		ended := map[string]bool{}
		e.onEnd = func(_, shard string) {
			mu.Lock()
			ended[shard] = true
			mu.Unlock()
		}
		w := e.startWorker("w1", nil)
		e.produce(20, 5, 10)
		e.waitDelivered(waitLong)
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if _, err := e.kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(e.stream), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
			t.Fatalf("delete stream: %v", err)
		}
		took := eventually(t, 20*time.Second, "both shard readers ended", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ended) == 2
		})
		for k, l := range e.leases() {
			if l.checkpoint != lease.ShardEnd {
				t.Errorf("lease %s of the deleted stream at %q, want SHARD_END", k, l.checkpoint)
			}
			if len(l.children) != 0 {
				t.Errorf("lease %s has children %v, want none", k, l.children)
			}
		}
		if n := w.counter("apigw_connector_kinesis_shards_gone_total", ""); n != 2 {
			t.Errorf("shards_gone_total = %v, want 2", n)
		}
		t.Logf("both shards ended %s after the stream was deleted", took.Round(time.Millisecond))
	})

	// A lease of a shard id the stream does not have (e.g. left by an older stream of the same
	// name) ends at once instead of being retried forever.
	t.Run("shard_does_not_exist", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 1)
		const bogus = "shardId-000000000099"
		var mu sync.Mutex
		var ran []string
		e.onEnd = func(_, shard string) {
			mu.Lock()
			ran = append(ran, shard)
			mu.Unlock()
		}
		existing := aws.ToString(testenv.ListShards(t, e.kc, e.stream)[0].ShardId)
		createJavaKCLTableAt(t, e.db, e.table, map[string]position{bogus: {seq: lease.TrimHorizon}, existing: {seq: lease.TrimHorizon}})
		w := e.startWorker("w1", nil)
		e.produce(5, 3, 3)
		e.waitDelivered(waitLong)
		eventually(t, 15*time.Second, "the lease of the missing shard ended or removed", func() bool {
			l, ok := e.leases()[bogus]
			return !ok || l.checkpoint == lease.ShardEnd
		})
		mu.Lock()
		defer mu.Unlock()
		t.Logf("readers returned: %v; shards_gone_total %v", ran, w.counter("apigw_connector_kinesis_shards_gone_total", ""))
	})

	// KPL aggregates are delivered user record by user record; a Java KCL checkpoint inside an
	// aggregate (S, k) resumes AT S and skips its first k+1 user records; a worker's own
	// checkpoint after an aggregate names its last user record, as the Java KCL's does.
	t.Run("kpl_resume_from_java_checkpoint", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 1)
		plain := e.gen.Records(1, 3, 3)[0]
		users := e.gen.Records(4, 3, 3)
		after := e.gen.Records(1, 3, 3)[0]
		pPlain := e.putRaw(plain.Data)
		pAgg := e.putRaw(kplAggregateOf(users))
		pAfter := e.putRaw(after.Data)

		const k = 1 // user records 0 and 1 of the aggregate were processed by the Java worker
		var skipped []string
		e.sent.mu.Lock()
		for _, c := range plain.Calls {
			skipped = append(skipped, c.RequestID)
		}
		for i, u := range users {
			for _, c := range u.Calls {
				if i <= k {
					skipped = append(skipped, c.RequestID)
					continue
				}
				e.sent.ids = append(e.sent.ids, c.RequestID)
				e.sent.where[c.RequestID] = pAgg
			}
		}
		for _, c := range after.Calls {
			e.sent.ids = append(e.sent.ids, c.RequestID)
			e.sent.where[c.RequestID] = pAfter
		}
		e.sent.mu.Unlock()
		createJavaKCLTableAt(t, e.db, e.table, map[string]position{pAgg.shard: {seq: pAgg.seq, sub: k}})
		w := e.startWorker("go-worker", nil)
		checkDups(t, e.waitDelivered(waitLong), w)
		for _, id := range skipped {
			if ws := e.rec.workersOf(id); len(ws) > 0 {
				t.Errorf("call %s covered by the Java checkpoint (%s, %d) delivered again", id, pAgg.seq, k)
			}
		}
		eventually(t, 10*time.Second, "checkpoint at the plain record after the aggregate", func() bool {
			l := e.leases()[pAgg.shard]
			return l.checkpoint == pAfter.seq && l.sub == 0
		})

		// An aggregate last in the shard: the checkpoint names its last user record.
		more := e.gen.Records(3, 3, 3)
		pMore := e.putRaw(kplAggregateOf(more))
		e.sent.mu.Lock()
		for _, u := range more {
			for _, c := range u.Calls {
				e.sent.ids = append(e.sent.ids, c.RequestID)
				e.sent.where[c.RequestID] = pMore
			}
		}
		e.sent.mu.Unlock()
		checkDups(t, e.waitDelivered(waitLong), w)
		eventually(t, 10*time.Second, "checkpoint at the aggregate's last user record", func() bool {
			l := e.leases()[pMore.shard]
			return l.checkpoint == pMore.seq && l.sub == int64(len(more)-1)
		})
		if n := w.counter("apigw_connector_kinesis_aggregated_records_total", ""); n != 2 {
			t.Errorf("aggregated_records_total = %v, want 2", n)
		}
		_ = pPlain
	})
}

// TestTimestampCheckpointsAtStart: leases left AT_TIMESTAMP by another application version are
// named at start, with the setting and its variable, when kinesis.initial_timestamp is unset.
func TestTimestampCheckpointsAtStart(t *testing.T) {
	kep := testenv.StartKinesisMock(t)
	dep := testenv.StartDynalite(t)
	e := newEnv(t, kep, dep, 1)
	var logs testkit.SyncBuffer
	e.logTo = &logs
	shard := aws.ToString(testenv.ListShards(t, e.kc, e.stream)[0].ShardId)
	createJavaKCLTableAt(t, e.db, e.table, map[string]position{shard: {seq: lease.AtTimestamp}})
	w := e.startWorker("w1", nil)
	out := logs.String()
	for _, want := range []string{"level=ERROR", "leases checkpointed AT_TIMESTAMP", "kinesis.initial_timestamp", "APIGW_CONNECTOR_KINESIS_INITIAL_TIMESTAMP", shard} {
		if !strings.Contains(out, want) {
			t.Errorf("start log lacks %q:\n%s", want, out)
		}
	}
	eventually(t, 10*time.Second, "the shard refused", func() bool {
		return w.counter("apigw_connector_kinesis_shard_failures_total", "") >= 1
	})
}

// kplAggregateOf aggregates the records' data as the KPL does.
func kplAggregateOf(recs []traffic.Record) []byte {
	datas := make([][]byte, len(recs))
	for i, r := range recs {
		datas[i] = r.Data
	}
	return kplAggregate(datas...)
}
