package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A steal for balance is a hand-off: the giver's processor sees its ctx
// cancelled (not Lost), settles and writes a final checkpoint that succeeds;
// the taker starts only after the giver returned, from that checkpoint.
func TestStealIsHandoff(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	ls := newLister(shardIDs(4)...)
	final := func(shard string) string { return "4959" + shard[len(shard)-4:] }
	type giverRun struct {
		cancelled, returned time.Time
		err                 error
		lost                bool
	}
	var mu sync.Mutex
	given := map[string]giverRun{}
	recA := newRecorder()
	recA.behave = func(ctx context.Context, h *Handle) {
		<-ctx.Done()
		r := giverRun{cancelled: time.Now()}
		select {
		case <-h.Lost():
			r.lost = true
		default:
			time.Sleep(100 * time.Millisecond) // in-flight records settle
			r.err = retryWrite(func() error { return h.SaveCheckpoint(context.Background(), final(h.ShardID())) })
		}
		r.returned = time.Now()
		mu.Lock()
		given[h.ShardID()] = r
		mu.Unlock()
	}
	a := startWorker(t, db, ls, recA, testConfig("steal_handoff", "a"))
	eventually(t, 3*time.Second, "a processes all", func() bool { return len(recA.runningShards()) == 4 })

	recB := newRecorder()
	var bStarted stamps
	recB.behave = func(ctx context.Context, h *Handle) {
		bStarted.mark(h.ShardID())
		<-ctx.Done()
	}
	b := startWorker(t, db, ls, recB, testConfig("steal_handoff", "b"))
	eventually(t, 3*testFailover+3*time.Second, "b processes 2", func() bool { return len(recB.runningShards()) == 2 })

	var worst, worstTotal time.Duration
	for _, k := range recB.runningShards() {
		b.c.mu.Lock()
		asked := b.c.held[k].takenAt
		b.c.mu.Unlock()
		mu.Lock()
		r, ok := given[k]
		mu.Unlock()
		switch {
		case !ok:
			t.Errorf("%s: b processes it, a's processor never stopped", k)
			continue
		case r.lost:
			t.Errorf("%s: a's processor saw Lost, want a hand-off (ctx cancelled, final checkpoint allowed)", k)
		case r.err != nil:
			t.Errorf("%s: a's final checkpoint during the hand-off: %v", k, r.err)
		}
		bt, _ := bStarted.get(k)
		if bt.Before(r.returned) {
			t.Errorf("%s: b started %s before a's processor returned: both processed it", k, r.returned.Sub(bt))
		}
		if seq, _ := recB.lastHandle(k).Checkpoint(); !r.lost && seq != final(k) {
			t.Errorf("%s: b resumed at %q, want a's final checkpoint %q", k, seq, final(k))
		}
		if d := bt.Sub(r.cancelled); d > worst {
			worst = d
		}
		if d := bt.Sub(asked); d > worstTotal {
			worstTotal = d
		}
	}
	t.Logf("hand-off: giver's ctx cancelled -> taker processing in at most %s; request -> taker processing at most %s (renew interval %s, settling 100ms)",
		worst, worstTotal, testRenew)
	if worstTotal > 2*time.Second {
		t.Errorf("hand-off took %s from the request, want < 2s", worstTotal)
	}
	if worst > 2*time.Second {
		t.Errorf("hand-off took %s, want < 2s", worst)
	}
	if got := testutil.ToFloat64(a.c.m.lost); got != 0 {
		t.Errorf("a lost_total = %v, want 0", got)
	}
}

// A giver that never lets go (dead, or a Java KCL 2.x worker that reads
// the request as a plain loss) holds the taker back for FailoverTime at
// most; the taker then clears checkpointOwner itself.
func TestHandoffGiverNeverLetsGo(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const tbl = "handoff_java"
	createTable(t, db, tbl)
	keys := []string{"shardId-000000000000", "shardId-000000000001"}
	for _, k := range keys {
		putItems(t, db, tbl, []map[string]types.AttributeValue{{
			attrKey: strAV(k), attrCounter: numAV(5), attrCheckpoint: strAV("4959" + k[len(k)-1:]), attrOwner: strAV("java"),
		}})
	}
	// "java" renews its leases while it owns them and knows nothing of hand-offs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(testRenew):
			}
			for _, k := range keys {
				_, _ = db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
					TableName: aws.String(tbl), Key: keyOf(k), UpdateExpression: aws.String("SET leaseCounter = leaseCounter + :one"),
					ConditionExpression:       aws.String("leaseOwner = :j"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":one": numAV(1), ":j": strAV("java")},
				})
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	rec := newRecorder()
	w := startWorker(t, db, newLister(), rec, testConfig(tbl, "go"))
	eventually(t, 3*testFailover+2*time.Second, "hand-off requested", func() bool { return testutil.ToFloat64(w.c.m.stolen) == 1 })
	asked := time.Now()
	eventually(t, testFailover+2*time.Second, "taker processing", func() bool { return len(rec.runningShards()) == 1 })
	took := time.Since(asked)
	t.Logf("giver never let go: taker started %s after its request (failover %s)", took, testFailover)
	if took < testFailover-testTake-handoffPoll {
		t.Errorf("taker started %s after the request, before the giver's bound (%s)", took, testFailover)
	}
	k := rec.runningShards()[0]
	if got := testutil.ToFloat64(w.c.cm.handoffs.WithLabelValues("taker", "forced")); got != 1 {
		t.Errorf("handoffs_total{taker,forced} = %v, want 1", got)
	}
	if _, ok := getItem(t, db, tbl, k)[handoffAttrCheckpointOwner]; ok {
		t.Error("checkpointOwner left in the table after the taker went ahead")
	}
	if seq, _ := rec.lastHandle(k).Checkpoint(); seq != "4959"+k[len(k)-1:] {
		t.Errorf("taker resumed at %q, want the table's checkpoint", seq)
	}
}

// Take order: a replacement for a dead worker steals nothing while it
// cannot yet tell the dead worker's leases are expired (its first failover
// time); afterwards the expired ones go first.
func TestReplacementWaitsBeforeStealing(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const tbl = "take_order"
	createTable(t, db, tbl)
	shards := shardIDs(6)
	for _, s := range shards[:3] {
		putItems(t, db, tbl, []map[string]types.AttributeValue{{
			attrKey: strAV(s.ID), attrCounter: numAV(9), attrCheckpoint: strAV(TrimHorizon), attrOwner: strAV("dead"),
		}})
	}
	ls := newLister(shards...)
	a := startWorker(t, db, ls, newRecorder(), testConfig(tbl, "a"))
	eventually(t, 3*time.Second, "a holds the 3 unowned", func() bool { return len(a.c.HeldLeases()) == 3 })
	aHeld := a.c.HeldLeases()
	b := startWorker(t, db, ls, newRecorder(), testConfig(tbl, "b"))
	bStarted := time.Now()
	// Old behaviour: b (target 2 of 6 over a, dead, b) steals from a within
	// a take interval or two. Watch until just before b's failover time.
	for time.Since(bStarted) < testFailover-2*testTake {
		if got := a.c.HeldLeases(); !slices.Equal(got, aHeld) {
			t.Fatalf("%s after the replacement started, a holds %v, want %v: it stole from a live worker before the dead one's leases could expire",
				time.Since(bStarted).Round(time.Millisecond), got, aHeld)
		}
		time.Sleep(testTake / 2)
	}
	took := eventually(t, 3*testFailover+3*time.Second, "3/3 and every lease held", func() bool {
		return len(a.c.HeldLeases()) == 3 && len(b.c.HeldLeases()) == 3
	})
	t.Logf("balanced 3/3 %s after the replacement started: %s", took, fmtHeld(a, b))
	// Which 3 end up with b depends on who saw the dead worker's leases
	// expire first (a watched longer); moves for balance are hand-offs,
	// asserted by TestStealIsHandoff.
}

// A restarted container keeping its worker id resumes the leases left in
// its name at once, from the table's checkpoints (the last ones written),
// instead of waiting for them to expire.
func TestRestartSameWorkerIDAdopts(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const tbl = "restart_same_id"
	createTable(t, db, tbl)
	keys := []string{"shardId-000000000000", "shardId-000000000001"}
	for i, k := range keys {
		putItems(t, db, tbl, []map[string]types.AttributeValue{{
			attrKey: strAV(k), attrCounter: numAV(40), attrCheckpoint: strAV(fmt.Sprint("4959", i)), attrOwner: strAV("w1"),
		}})
	}
	rec := newRecorder()
	cfg := testConfig(tbl, "w1")
	cfg.FailoverTime = 10 * time.Second // expiry would take far longer than the test allows
	cfg.RenewInterval = time.Second
	w := startWorker(t, db, newLister(shardIDs(2)...), rec, cfg)
	took := eventually(t, 3*time.Second, "adopted leases processing", func() bool { return len(rec.runningShards()) == 2 })
	t.Logf("restart with the same worker id: processing again after %s", took)
	for i, k := range keys {
		if seq, _ := rec.lastHandle(k).Checkpoint(); seq != fmt.Sprint("4959", i) {
			t.Errorf("%s resumed at %q, want %q", k, seq, fmt.Sprint("4959", i))
		}
		if l := getLease(t, db, tbl, k); l.Owner != "w1" || l.Counter <= 40 {
			t.Errorf("%s after adoption: %+v, want owner w1 and the counter moved (a twin still running loses it)", k, l)
		}
	}
	if got := testutil.ToFloat64(w.c.m.lost); got != 0 {
		t.Errorf("lost_total = %v", got)
	}
}

// countDB counts calls and can throttle them.
type countDB struct {
	DynamoDBAPI
	scans, consistentScans atomic.Int64
	throttle               atomic.Bool
}

var errThrottled = &types.ProvisionedThroughputExceededException{Message: aws.String("throttled (test)")}

func (d *countDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	d.scans.Add(1)
	if aws.ToBool(in.ConsistentRead) {
		d.consistentScans.Add(1)
	}
	if d.throttle.Load() {
		return nil, errThrottled
	}
	return d.DynamoDBAPI.Scan(ctx, in, opts...)
}

func (d *countDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if d.throttle.Load() {
		return nil, errThrottled
	}
	return d.DynamoDBAPI.UpdateItem(ctx, in, opts...)
}

func (d *countDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if d.throttle.Load() {
		return nil, errThrottled
	}
	return d.DynamoDBAPI.GetItem(ctx, in, opts...)
}

// A balanced, stable worker scans about every 2 x failover time, not every
// take interval, and eventually consistent.
func TestStableScanCadence(t *testing.T) {
	t.Parallel()
	db := &countDB{DynamoDBAPI: dynamo(t)}
	rec := newRecorder()
	cfg := testConfig("scan_cadence", "w1")
	cfg.ShardSyncInterval = time.Hour // shard sync's own scans are not counted here
	w := startWorker(t, db, newLister(shardIDs(2)...), rec, cfg)
	eventually(t, 2*time.Second, "processing", func() bool { return len(rec.runningShards()) == 2 })
	time.Sleep(2*testFailover + testTake) // past the start-up window: stable from here
	before, beforeConsistent := db.scans.Load(), db.consistentScans.Load()
	const window = 3 * time.Second
	time.Sleep(window)
	n := db.scans.Load() - before
	t.Logf("stable worker: %d scans in %s (take interval %s, stable interval %s)", n, window, testTake, w.c.cfg.StableScanInterval)
	if max := int64(window/(w.c.cfg.StableScanInterval*9/10)) + 1; n > max {
		t.Errorf("%d scans in %s while stable, want at most %d", n, window, max)
	}
	if c := db.consistentScans.Load() - beforeConsistent; c != 0 {
		t.Errorf("%d strongly consistent take-loop scans, want eventually consistent ones", c)
	}
	if got := testutil.ToFloat64(w.c.cm.ddbCalls.WithLabelValues("scan")); got < 1 {
		t.Errorf("dynamodb_calls_total{op=scan} = %v", got)
	}
}

// Throttling backs scans off and costs no lease while the throttled spell
// is shorter than the failover time.
func TestThrottledTableKeepsLeases(t *testing.T) {
	t.Parallel()
	db := &countDB{DynamoDBAPI: dynamo(t)}
	rec := newRecorder()
	cfg := testConfig("throttled", "w1")
	cfg.FailoverTime = 4 * time.Second
	cfg.RenewInterval = time.Second
	cfg.ShardSyncInterval = time.Hour
	w := startWorker(t, db, newLister(shardIDs(3)...), rec, cfg)
	eventually(t, 2*time.Second, "processing", func() bool { return len(rec.runningShards()) == 3 })
	before := db.scans.Load()
	db.throttle.Store(true)
	const spell = 1500 * time.Millisecond
	time.Sleep(spell)
	db.throttle.Store(false)
	n := db.scans.Load() - before
	t.Logf("%d scans during a %s throttled spell (take interval %s)", n, spell, testTake)
	if fast := int64(spell / testTake); n > fast/2 {
		t.Errorf("%d scans while throttled, want backoff (at most %d)", n, fast/2)
	}
	eventually(t, 3*time.Second, "renewals again", func() bool { return testutil.ToFloat64(w.c.m.renewals) >= 3 })
	if got := testutil.ToFloat64(w.c.m.lost); got != 0 {
		t.Errorf("lost_total = %v after a throttled spell shorter than the failover time", got)
	}
	if got := rec.runningShards(); len(got) != 3 {
		t.Errorf("processing %v after throttling, want all 3", got)
	}
	if !isThrottle(fmt.Errorf("renew: %w", errThrottled)) {
		t.Error("isThrottle misses ProvisionedThroughputExceededException")
	}
	_ = errors.Is
}

// A restarted worker finds a hand-off its earlier process (same worker id)
// never finished: that processor is gone and its last checkpoint is in the
// table, so it lets go at once instead of holding the taker back.
func TestRestartFinishesStaleHandoff(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const tbl = "stale_handoff"
	createTable(t, db, tbl)
	const shard = "shardId-000000000000"
	putItems(t, db, tbl, []map[string]types.AttributeValue{{
		attrKey: strAV(shard), attrCounter: numAV(12), attrCheckpoint: strAV("4959"), attrOwner: strAV("taker"),
		handoffAttrCheckpointOwner: strAV("w1"),
	}})
	cfg := testConfig(tbl, "w1")
	cfg.FailoverTime, cfg.RenewInterval = 10*time.Second, time.Second // the taker's lease must not expire meanwhile
	w := startWorker(t, db, newLister(shardIDs(1)...), newRecorder(), cfg)
	eventually(t, 3*time.Second, "checkpointOwner cleared", func() bool {
		_, ok := getItem(t, db, tbl, shard)[handoffAttrCheckpointOwner]
		return !ok
	})
	if l := getLease(t, db, tbl, shard); l.Owner != "taker" || l.Checkpoint != "4959" {
		t.Errorf("lease after clearing the stale hand-off: %+v, want the taker's, checkpoint untouched", l)
	}
	if got := w.c.HeldLeases(); len(got) != 0 {
		t.Errorf("w1 holds %v, want nothing (the lease is the taker's)", got)
	}
}
