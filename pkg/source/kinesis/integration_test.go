package kinesis

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/lease"
)

// nodeOutage is how long the node is down in TestWorkers/node_outage.
const nodeOutage = 30 * time.Second // the drill: a 30 s outage

// TestWorkers runs the worker scenarios on one kinesis-mock and one dynalite, each subtest on
// its own stream and lease table.
func TestWorkers(t *testing.T) {
	kep := testenv.StartKinesisMock(t)
	dep := testenv.StartDynalite(t)

	// Not parallel, and first: its figure is a latency, which the other subtests' load would blur.
	t.Run("graceful_handover", func(t *testing.T) {
		e := newEnv(t, kep, dep, 4)
		leaving := e.startWorker("leaving", nil)
		eventually(t, 10*time.Second, "first worker holding all shards", func() bool { return owners(e.leases())["leaving"] == 4 })
		staying := e.startWorker("staying", nil)
		e.produce(40, 10, 20)
		e.waitDelivered(waitLong)
		start := time.Now()
		leaving.stop(t)
		stopped := time.Since(start)
		took := eventually(t, 10*time.Second, "staying worker holding all shards", func() bool {
			return owners(e.leases())["staying"] == 4
		})
		t.Logf("graceful handover: shutdown took %s, all leases taken by the other worker %s after the shutdown returned",
			stopped.Round(time.Millisecond), took.Round(time.Millisecond))
		bound := 2 * time.Second // released leases are picked up on the next take cycle (1 s)
		if raceEnabled {
			bound *= 2
		}
		if took > bound {
			t.Errorf("leases taken %s after a graceful shutdown, want within %s", took, bound)
		}
		e.produce(20, 10, 20)
		checkDups(t, e.waitDelivered(waitLong), leaving, staying)
	})

	t.Run("one_worker_four_shards", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 4)
		w := e.startWorker("w1", nil)
		records, want := 400, 19000 // ~20,000 calls
		if raceEnabled {
			records, want = 100, 4500
		}
		e.produce(records, 40, 60)
		if n := len(e.sent.allIDs()); n < want {
			t.Fatalf("produced only %d calls", n)
		}
		checkDups(t, e.waitDelivered(waitLong), w)
		e.waitCheckpointsAtEnd(10 * time.Second)
	})

	t.Run("three_workers_share_four_shards", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 4)
		names := []string{"w1", "w2", "w3"}
		var ws []*worker
		for _, n := range names {
			ws = append(ws, e.startWorker(n, nil))
		}
		took := eventually(t, 20*time.Second, "each of 3 workers holding 1-2 of 4 shards", func() bool {
			o := owners(e.leases())
			total := 0
			for _, n := range names {
				if o[n] < 1 || o[n] > 2 {
					return false
				}
				total += o[n]
			}
			return total == 4
		})
		t.Logf("balanced in %s: %v", took.Round(time.Millisecond), owners(e.leases()))
		// A worker whose lease was stolen reads on until its next renewal tells it (the KCL's
		// window too); produce once every old owner has noticed, so no duplicate is expected.
		time.Sleep(testFailover)
		lostBefore := 0.0
		for _, w := range ws {
			lostBefore += w.counter("apigw_connector_lease_lost_total", "")
		}
		e.produce(40, 10, 20)
		dups := e.waitDelivered(waitLong)
		lostAfter := 0.0
		for _, w := range ws {
			lostAfter += w.counter("apigw_connector_lease_lost_total", "")
		}
		if len(dups) > 0 && lostAfter == lostBefore {
			t.Errorf("%d duplicates in a stable group (e.g. %s)", len(dups), dups[0])
		}
	})

	t.Run("crash_failover", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 4)
		var mu sync.Mutex
		starts := map[string]string{} // shard -> checkpoint the survivor started from
		e.onStart = func(w, shard, cp string) {
			if w == "survivor" {
				mu.Lock()
				starts[shard] = cp
				mu.Unlock()
			}
		}
		victim := e.startWorker("victim", nil)
		eventually(t, 10*time.Second, "victim holding all shards", func() bool { return owners(e.leases())["victim"] == 4 })
		e.startWorker("survivor", nil)
		eventually(t, 10*time.Second, "two workers holding two shards each", func() bool {
			o := owners(e.leases())
			return o["victim"] == 2 && o["survivor"] == 2
		})
		e.produce(60, 10, 20)
		e.waitDelivered(waitLong)
		e.produce(20, 10, 20) // some of these are in flight or not yet checkpointed at the crash
		victim.cancel()       // crash: no graceful shutdown, no lease release
		// A stable survivor notices on its next scan (stable scan interval, +20 % jitter)
		// that the victim missed its renewals; expiry is then judged on its own clock
		// (failover time without a renewal) and its fast take cycle (1 s) takes the leases.
		bound := testFailover + testFailover*6/5 + time.Second + 500*time.Millisecond
		took := eventually(t, 10*time.Second, "survivor taking all shards", func() bool {
			return owners(e.leases())["survivor"] == 4
		})
		t.Logf("survivor held all 4 shards %s after the crash (failover %s, bound %s)", took.Round(time.Millisecond), testFailover, bound)
		if took > bound {
			t.Errorf("failover took %s, want within %s", took, bound)
		}
		e.produce(40, 10, 20)
		dups := e.waitDelivered(waitLong)
		victim.crash(t)
		mu.Lock()
		defer mu.Unlock()
		for _, id := range dups {
			p := e.sent.where[id]
			start, ok := starts[p.shard]
			if !ok {
				t.Errorf("call %s delivered twice but the survivor never read shard %s", id, p.shard)
				continue
			}
			if !seqLess(start, p.seq) && start != PositionTrimHorizon {
				t.Errorf("call %s (record %s on %s) re-delivered though the checkpoint %s covered it (by %v)",
					id, p.seq, p.shard, start, e.rec.workersOf(id))
			}
		}
		t.Logf("re-delivered after the crash: %d calls, all after the checkpoints the survivor resumed from", len(dups))
	})

	t.Run("node_outage", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 2)
		w := e.startWorker("w1", nil)
		e.produce(20, 10, 20)
		e.waitDelivered(waitLong)
		e.waitCheckpointsAtEnd(10 * time.Second)
		e.rec.down.Store(true)
		before := e.leases()
		e.produce(20, 10, 20)
		deadline := time.Now().Add(nodeOutage)
		for time.Now().Before(deadline) {
			for k, l := range e.leases() {
				if l.checkpoint != before[k].checkpoint {
					t.Fatalf("checkpoint of %s moved from %s to %s while the node was down", k, before[k].checkpoint, l.checkpoint)
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
		e.rec.down.Store(false)
		checkDups(t, e.waitDelivered(waitLong), w)
		e.waitCheckpointsAtEnd(10 * time.Second)
	})

	t.Run("resume_java_kcl_table", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 2)
		// Records before the Java checkpoints must not be read again; records after must.
		early := e.gen.Records(10, 5, 5)
		late := e.gen.Records(10, 5, 5)
		e.putRecords(early)
		e.sent.mu.Lock()
		checkpoints := maps.Clone(e.sent.last)
		earlyIDs := append([]string(nil), e.sent.ids...)
		e.sent.ids = nil
		e.sent.mu.Unlock()
		e.putRecords(late)
		createJavaKCLTable(t, e.db, e.table, checkpoints)
		e.startWorker("go-worker", nil)
		e.waitDelivered(waitLong)
		for _, id := range earlyIDs {
			if w := e.rec.workersOf(id); len(w) > 0 {
				t.Errorf("call %s before the Java KCL checkpoint was delivered again", id)
			}
		}
		e.waitCheckpointsAtEnd(10 * time.Second)
		for k, l := range e.leases() {
			if l.owner != "go-worker" {
				t.Errorf("lease %s owned by %q, want go-worker (the Java worker stopped renewing)", k, l.owner)
			}
		}
	})

	t.Run("bad_records_skipped", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 1)
		w := e.startWorker("w1", nil)
		e.produce(5, 5, 5)
		bad := [][]byte{
			[]byte("\x1f\x8b\x08\x00corrupt gzip"),
			[]byte("plain text, not json"),
			gzipBytes([]byte("not json inside gzip")),
			gzipBytes(nil),
			{' '},
		}
		for _, b := range bad {
			e.putRaw(b)
			e.produce(2, 3, 3)
		}
		checkDups(t, e.waitDelivered(waitLong), w)
		e.waitCheckpointsAtEnd(10 * time.Second)
		// Four are not CloudWatch Logs data at all; the plain text reads as an extracted
		// message line (a shape Firehose delivers) and fails to parse as an access-log line.
		eventually(t, 5*time.Second, "bad records counted", func() bool {
			return w.counter("apigw_connector_kinesis_records_undecodable_total", "") == 4 &&
				w.counter("apigw_connector_parse_errors_total", "") >= 1
		})
	})
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// createJavaKCLTable writes the lease table as the Java KCL 2.x leaves it: one item per shard,
// checkpoint mid-stream, owned by a worker that no longer renews.
func createJavaKCLTable(t *testing.T, db *dynamodb.Client, table string, checkpoints map[string]string) {
	t.Helper()
	at := map[string]position{}
	for k, seq := range checkpoints {
		at[k] = position{seq: seq}
	}
	createJavaKCLTableAt(t, db, table, at)
}

// createJavaKCLTableAt is createJavaKCLTable with sub-sequence numbers (KPL aggregates).
func createJavaKCLTableAt(t *testing.T, db *dynamodb.Client, table string, checkpoints map[string]position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("leaseKey"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("leaseKey"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("create Java KCL lease table: %v", err)
	}
	for {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err == nil && out.Table.TableStatus == ddbtypes.TableStatusActive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for shard, cp := range checkpoints {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]ddbtypes.AttributeValue{
			"leaseKey":                     &ddbtypes.AttributeValueMemberS{Value: shard},
			"leaseOwner":                   &ddbtypes.AttributeValueMemberS{Value: "ip-10-0-0-1.ec2.internal:6f1c2d4e-java"},
			"leaseCounter":                 &ddbtypes.AttributeValueMemberN{Value: "4711"},
			"checkpoint":                   &ddbtypes.AttributeValueMemberS{Value: cp.seq},
			"checkpointSubSequenceNumber":  &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(cp.sub, 10)},
			"ownerSwitchesSinceCheckpoint": &ddbtypes.AttributeValueMemberN{Value: "0"},
			"startingHashKey":              &ddbtypes.AttributeValueMemberS{Value: "0"},
			"endingHashKey":                &ddbtypes.AttributeValueMemberS{Value: "340282366920938463463374607431768211455"},
		}})
		if err != nil {
			t.Fatalf("put Java KCL lease %s: %v", shard, err)
		}
	}
}

// TestResharding splits one shard and merges two others while producing (kinesalite, which
// implements both): nothing is lost, and no child record is delivered before its parent's last.
func TestResharding(t *testing.T) {
	kep := testenv.StartKinesalite(t)
	dep := testenv.StartDynalite(t)
	e := newEnv(t, kep, dep, 3)
	e.startWorker("w1", nil)
	e.startWorker("w2", nil)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // producer: keeps writing while the stream is resharded
		defer wg.Done()
		for ctx.Err() == nil {
			e.produce(10, 3, 6)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	shards := testenv.ListShards(t, e.kc, e.stream)
	testenv.SplitShardInHalf(t, e.kc, e.stream, aws.ToString(shards[0].ShardId))
	time.Sleep(500 * time.Millisecond)
	testenv.MergeShards(t, e.kc, e.stream, aws.ToString(shards[1].ShardId), aws.ToString(shards[2].ShardId))
	time.Sleep(time.Second)
	cancel()
	wg.Wait()

	if dups := e.waitDelivered(waitLong); len(dups) > 0 {
		t.Logf("%d duplicates (allowed: at-least-once), e.g. %s", len(dups), dups[0])
	}
	all := testenv.ListShards(t, e.kc, e.stream)
	if len(all) != 6 {
		t.Fatalf("want 6 shards after one split and one merge, got %d", len(all))
	}
	// Per shard: the first and last delivery index of its calls.
	first, last := map[string]int64{}, map[string]int64{}
	e.rec.mu.Lock()
	for _, id := range e.sent.allIDs() {
		sh := e.sent.where[id].shard
		if f, ok := first[sh]; !ok || e.rec.firstAt[id] < f {
			first[sh] = e.rec.firstAt[id]
		}
		if e.rec.lastAt[id] > last[sh] {
			last[sh] = e.rec.lastAt[id]
		}
	}
	e.rec.mu.Unlock()
	checked := 0
	for _, s := range all {
		child := aws.ToString(s.ShardId)
		if _, ok := first[child]; !ok {
			continue
		}
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			parent := aws.ToString(p)
			if parent == "" {
				continue
			}
			if _, ok := last[parent]; !ok {
				continue
			}
			checked++
			if first[child] <= last[parent] {
				t.Errorf("child %s delivered a call (#%d) before parent %s's last (#%d)", child, first[child], parent, last[parent])
			}
		}
	}
	if checked < 3 {
		t.Errorf("only %d parent/child pairs had traffic on both sides; want 3 (split: 2, merge: 2)", checked)
	}
	// A closed parent's lease is at SHARD_END, or already deleted: finished
	// leases are cleaned up once their children have made progress.
	ls := e.leases()
	for _, s := range all {
		id := aws.ToString(s.ShardId)
		l, held := ls[id]
		if s.SequenceNumberRange.EndingSequenceNumber != nil && held && l.checkpoint != lease.ShardEnd {
			t.Errorf("closed parent %s has checkpoint %q, want SHARD_END (or its lease cleaned up)", id, l.checkpoint)
		}
	}
	t.Logf("%d parent/child pairs checked, leases: %v", checked, fmt.Sprint(owners(ls)))
}
