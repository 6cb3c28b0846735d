package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTableSchema(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	ls := newLister(
		Shard{ID: "shardId-000000000000", StartingHashKey: "0", EndingHashKey: "99", Closed: true},
		Shard{ID: "shardId-000000000001", ParentShardIDs: []string{"shardId-000000000000"}, StartingHashKey: "0", EndingHashKey: "49"},
	)
	rec := newRecorder()
	afterEnd := make(chan error, 1)
	rec.behave = func(ctx context.Context, h *Handle) {
		if h.ShardID() == "shardId-000000000000" {
			if err := retryWrite(func() error { return h.ShardEnded(ctx, []string{"shardId-000000000001"}) }); err != nil {
				afterEnd <- err
				return
			}
			afterEnd <- h.SaveCheckpoint(ctx, "4959")
			return
		}
		<-ctx.Done()
	}
	startWorker(t, db, ls, rec, testConfig("schema_app", "w1"))

	out, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("schema_app")})
	if err != nil {
		t.Fatal(err)
	}
	tbl := out.Table
	if len(tbl.KeySchema) != 1 || aws.ToString(tbl.KeySchema[0].AttributeName) != "leaseKey" || tbl.KeySchema[0].KeyType != types.KeyTypeHash {
		t.Errorf("key schema = %+v, want leaseKey HASH only", tbl.KeySchema)
	}
	defs := map[string]types.ScalarAttributeType{}
	for _, d := range tbl.AttributeDefinitions {
		defs[aws.ToString(d.AttributeName)] = d.AttributeType
	}
	if len(defs) != 2 || defs["leaseKey"] != types.ScalarAttributeTypeS || defs["leaseOwner"] != types.ScalarAttributeTypeS {
		t.Errorf("attribute definitions = %v, want leaseKey S and leaseOwner S (owner index)", defs)
	}
	if tbl.BillingModeSummary == nil || tbl.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode = %+v, want PAY_PER_REQUEST", tbl.BillingModeSummary)
	}

	// The child is processed once the parent ended; by then both items carry
	// every attribute this package writes, with the Java KCL's types.
	eventually(t, 5*time.Second, "child processing", func() bool { return rec.isRunning("shardId-000000000001") })
	parent := getItem(t, db, "schema_app", "shardId-000000000000")
	child := getItem(t, db, "schema_app", "shardId-000000000001")
	wantTypes := func(key string, item map[string]types.AttributeValue, want map[string]string) {
		t.Helper()
		for name, typ := range want {
			var got string
			switch item[name].(type) {
			case *types.AttributeValueMemberS:
				got = "S"
			case *types.AttributeValueMemberN:
				got = "N"
			case *types.AttributeValueMemberSS:
				got = "SS"
			case nil:
				got = "missing"
			default:
				got = fmt.Sprintf("%T", item[name])
			}
			if got != typ {
				t.Errorf("%s: %s is %s, want %s", key, name, got, typ)
			}
		}
	}
	wantTypes("parent", parent, map[string]string{
		"leaseKey": "S", "leaseCounter": "N", "checkpoint": "S", "checkpointSubSequenceNumber": "N",
		"ownerSwitchesSinceCheckpoint": "N", "childShardIds": "SS", "startingHashKey": "S", "endingHashKey": "S",
		"leaseOwner": "missing", // released at SHARD_END
	})
	wantTypes("child", child, map[string]string{
		"leaseKey": "S", "leaseOwner": "S", "leaseCounter": "N", "checkpoint": "S", "checkpointSubSequenceNumber": "N",
		"ownerSwitchesSinceCheckpoint": "N", "parentShardId": "SS", "startingHashKey": "S", "endingHashKey": "S",
	})
	if err := <-afterEnd; !errors.Is(err, ErrShardEnded) {
		t.Errorf("SaveCheckpoint after ShardEnded = %v, want ErrShardEnded", err)
	}
	if l := getLease(t, db, "schema_app", "shardId-000000000000"); l.Checkpoint != ShardEnd || !slices.Equal(l.ChildShardIDs, []string{"shardId-000000000001"}) {
		t.Errorf("parent lease = %+v, want SHARD_END with child", l)
	}
}

func TestTableMissing(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	cfg := testConfig("missing_app", "w1")
	cfg.CreateTable = false
	c, err := NewCoordinator(db, newLister(shardIDs(1)...), newRecorder(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start(context.Background())
	if !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("Start = %v, want ErrTableNotFound", err)
	}
	if c.Ready() {
		t.Error("Ready after failed Start")
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after failed Start: %v", err)
	}
}

// A table written by Java KCL workers (now gone) is resumed from its
// checkpoints; SHARD_END leases are left alone; unknown attributes survive.
func TestResumeJavaKCLTable(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	createTable(t, db, "java_app")
	putItems(t, db, "java_app", loadItems(t, "testdata/java-kcl-items.json"))
	ls := newLister(
		Shard{ID: "shardId-000000000000"}, Shard{ID: "shardId-000000000001"},
		Shard{ID: "shardId-000000000002", Closed: true},
		Shard{ID: "shardId-000000000003", ParentShardIDs: []string{"shardId-000000000002"}},
		Shard{ID: "shardId-000000000004", ParentShardIDs: []string{"shardId-000000000002"}},
	)
	rec := newRecorder()
	w := startWorker(t, db, ls, rec, testConfig("java_app", "go-worker"))

	// The unowned lease is free at once; the Java owners' leases expire
	// after FailoverTime of unchanged counters.
	eventually(t, 2*time.Second, "unowned lease 3 taken", func() bool { return rec.isRunning("shardId-000000000003") })
	want := []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000003", "shardId-000000000004"}
	took := eventually(t, 3*testFailover, "expired Java leases taken", func() bool { return slices.Equal(rec.runningShards(), want) })
	t.Logf("expired Java-owned leases taken after %s (failover %s)", took, testFailover)
	if slices.Contains(w.c.HeldLeases(), "shardId-000000000002") {
		t.Error("SHARD_END lease taken")
	}

	for shard, cp := range map[string]struct {
		seq string
		sub int64
	}{
		"shardId-000000000000": {"49590338271490256608559692538361571095921575989136588898", 0},
		"shardId-000000000001": {"49590338271512557353758223161503106814194224350642569234", 2},
		"shardId-000000000003": {TrimHorizon, 0},
		"shardId-000000000004": {"49590338271601759334555826812302314489307013473627160642", 0},
	} {
		seq, sub := rec.lastHandle(shard).Checkpoint()
		if seq != cp.seq || sub != cp.sub {
			t.Errorf("%s: Checkpoint() = %s/%d, want %s/%d", shard, seq, sub, cp.seq, cp.sub)
		}
	}
	l0 := getLease(t, db, "java_app", "shardId-000000000000")
	if l0.Owner != "go-worker" || l0.Counter != 413 || l0.OwnerSwitchesSinceCheckpoint != 4 {
		t.Errorf("taken lease 0 = %+v, want owner go-worker, counter 413+, switches 4", l0)
	}
	if _, ok := getItem(t, db, "java_app", "shardId-000000000000")["throughputKBps"]; !ok {
		t.Error("unknown attribute throughputKBps dropped")
	}

	// A checkpoint write resets the switch count and clears the pending checkpoint.
	if err := rec.lastHandle("shardId-000000000001").SaveCheckpoint(context.Background(), "49590338271512557353758223161503106814194224350642569300"); err != nil {
		t.Fatal(err)
	}
	l1 := getLease(t, db, "java_app", "shardId-000000000001")
	if l1.Checkpoint != "49590338271512557353758223161503106814194224350642569300" || l1.CheckpointSubSequenceNumber != 0 ||
		l1.PendingCheckpoint != "" || l1.OwnerSwitchesSinceCheckpoint != 0 {
		t.Errorf("after checkpoint: %+v", l1)
	}
	if _, ok := getItem(t, db, "java_app", "shardId-000000000001")[attrPendingCheckpointSN]; ok {
		t.Error("pendingCheckpointSubSequenceNumber not cleared")
	}
	if got := testutil.ToFloat64(w.c.m.checkpoints); got != 1 {
		t.Errorf("checkpoints_total = %v, want 1", got)
	}
}

func TestBalance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		shards  int
		workers int
		want    []int // sorted lease counts
	}{
		{"6 leases 3 workers", 6, 3, []int{2, 2, 2}},
		{"5 leases 2 workers", 5, 2, []int{2, 3}},
		{"4 leases 2 workers", 4, 2, []int{2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := dynamo(t)
			ls := newLister(shardIDs(tc.shards)...)
			var ws []*worker
			for i := range tc.workers {
				ws = append(ws, startWorker(t, db, ls, newRecorder(), testConfig("bal", fmt.Sprintf("w%d", i))))
			}
			took := eventually(t, 4*testFailover, "balanced "+fmt.Sprint(tc.want), func() bool {
				var counts []int
				seen := map[string]bool{}
				for _, w := range ws {
					for _, k := range w.c.HeldLeases() {
						seen[k] = true
					}
					counts = append(counts, len(w.c.HeldLeases()))
				}
				slices.Sort(counts)
				return len(seen) == tc.shards && slices.Equal(counts, tc.want)
			})
			t.Logf("balanced after %s: %s", took, fmtHeld(ws...))
		})
	}
}

// A worker joining a fleet reaches its share by stealing within two
// failover periods (the Java KCL would need a failover period per lease).
func TestJoinSteals(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	ls := newLister(shardIDs(6)...)
	a := startWorker(t, db, ls, newRecorder(), testConfig("join", "a"))
	eventually(t, 3*time.Second, "a holds all", func() bool { return len(a.c.HeldLeases()) == 6 })
	b := startWorker(t, db, ls, newRecorder(), testConfig("join", "b"))
	c := startWorker(t, db, ls, newRecorder(), testConfig("join", "c"))
	took := eventually(t, 2*testFailover, "2/2/2 after join", func() bool {
		return len(a.c.HeldLeases()) == 2 && len(b.c.HeldLeases()) == 2 && len(c.c.HeldLeases()) == 2
	})
	t.Logf("joiners reached their share in %s (failover %s): %s", took, testFailover, fmtHeld(a, b, c))
	// Four moves are needed; two joiners balancing at once may overshoot by
	// one (b asks for a lease a then hands to c), never more.
	stolen := testutil.ToFloat64(b.c.m.stolen) + testutil.ToFloat64(c.c.m.stolen)
	if stolen < 4 || stolen > 5 {
		t.Errorf("stolen_total b+c = %v, want 4 (5 at most)", stolen)
	}
	// Planned moves are hand-offs, not losses.
	if lost := testutil.ToFloat64(a.c.m.lost); lost != 0 {
		t.Errorf("a lost_total = %v, want 0", lost)
	}
	eventually(t, 2*time.Second, "a hands 4 leases over", func() bool {
		return testutil.ToFloat64(a.c.cm.handoffs.WithLabelValues("giver", "clean")) == 4
	})
}

// A worker that stops without releasing (crash) loses its leases to the
// others within FailoverTime plus a renew period.
func TestCrashFailover(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	ls := newLister(shardIDs(4)...)
	a := startWorker(t, db, ls, newRecorder(), testConfig("crash", "a"))
	b := startWorker(t, db, ls, newRecorder(), testConfig("crash", "b"))
	eventually(t, 4*testFailover, "2/2", func() bool { return len(a.c.HeldLeases()) == 2 && len(b.c.HeldLeases()) == 2 })
	crashedAt := time.Now()
	a.cancel() // no Shutdown: leases stay owned by a in the table
	eventually(t, time.Second, "a's processors cancelled", func() bool { return len(a.rec.runningShards()) == 0 })
	eventually(t, testFailover+testRenew+time.Second, "b takes all", func() bool { return len(b.c.HeldLeases()) == 4 })
	took := time.Since(crashedAt)
	t.Logf("crashed worker's leases taken after %s (failover %s + renew %s = %s)", took, testFailover, testRenew, testFailover+testRenew)
	if took < testFailover-testRenew {
		t.Errorf("leases taken after %s, before they could have expired", took)
	}
	eventually(t, time.Second, "b processes all", func() bool { return len(b.rec.runningShards()) == 4 })
}

// Graceful shutdown: processors write final checkpoints while leases are
// still renewed, then leases are released and taken by the other worker
// at once, from those checkpoints.
func TestGracefulHandoff(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	ls := newLister(shardIDs(4)...)
	final := func(shard string) string { return "4959" + shard[len(shard)-4:] }
	recA := newRecorder()
	var finalErrs sync.Map // *Handle -> error of its final checkpoint
	var shuttingDown atomic.Bool
	recA.behave = func(ctx context.Context, h *Handle) {
		<-ctx.Done()
		select {
		case <-h.Lost():
			return
		default:
		}
		if !shuttingDown.Load() { // handed over while balancing: settle quickly
			_ = h.SaveCheckpoint(context.Background(), final(h.ShardID()))
			return
		}
		time.Sleep(2 * testRenew) // in-flight work outlives a renewal or two
		finalErrs.Store(h, retryWrite(func() error { return h.SaveCheckpoint(context.Background(), final(h.ShardID())) }))
	}
	cfg := func(id string) Config {
		c := testConfig("handoff", id)
		c.TakeInterval = 0 // the default (1s) must give a handoff within 2s
		return c
	}
	a := startWorker(t, db, ls, recA, cfg("a"))
	recB := newRecorder()
	b := startWorker(t, db, ls, recB, cfg("b"))
	eventually(t, 4*testFailover+3*time.Second, "2/2", func() bool { return len(a.c.HeldLeases()) == 2 && len(b.c.HeldLeases()) == 2 })
	handed := a.c.HeldLeases()
	for _, k := range handed {
		eventually(t, 2*time.Second, "a processes "+k, func() bool { return recA.isRunning(k) })
	}

	lostBefore := testutil.ToFloat64(a.c.m.lost)
	shuttingDown.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	for _, k := range handed {
		err, ok := finalErrs.Load(recA.lastHandle(k))
		if !ok || err != nil {
			t.Errorf("final checkpoint of %s during shutdown: written %v, err %v", k, ok, err)
		}
	}
	if got := testutil.ToFloat64(a.c.m.released); got != 2 {
		t.Errorf("a released_total = %v, want 2", got)
	}
	if got := testutil.ToFloat64(a.c.m.lost); got != lostBefore {
		t.Errorf("a lost_total went from %v to %v during shutdown, want no loss (renewals go on)", lostBefore, got)
	}
	took := eventually(t, 2*time.Second, "b takes the released leases", func() bool { return len(b.c.HeldLeases()) == 4 })
	t.Logf("graceful handoff: b holds the released leases %s after release (take interval %s)", took, DefaultConfig().TakeInterval)
	eventually(t, 2*time.Second, "b processes them", func() bool { return recB.isRunning(handed[0]) && recB.isRunning(handed[1]) })
	t.Logf("graceful handoff: b processing them %s after release", time.Since(released))
	for _, k := range handed {
		if seq, _ := recB.lastHandle(k).Checkpoint(); seq != final(k) {
			t.Errorf("%s resumed at %q, want a's final checkpoint %q", k, seq, final(k))
		}
	}
	if a.c.Ready() {
		t.Error("a Ready after Shutdown")
	}
}

// A lease changed by another writer is lost: the processor's ctx ends, Lost
// closes, and SaveCheckpoint returns ErrLeaseLost without writing.
func TestLostLease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		update string
	}{
		{"owner changed", "SET leaseOwner = :x, leaseCounter = leaseCounter + :one"},
		{"counter bumped", "SET leaseCounter = leaseCounter + :one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := dynamo(t)
			const shard = "shardId-000000000000"
			ls := newLister(shardIDs(1)...)
			rec := newRecorder()
			ctxEnded := make(chan struct{})
			rec.behave = func(ctx context.Context, h *Handle) {
				<-ctx.Done()
				close(ctxEnded)
			}
			cfg := testConfig("lost", "w1")
			cfg.FailoverTime = 10 * time.Second // no retake during the test
			cfg.RenewInterval = 300 * time.Millisecond
			w := startWorker(t, db, ls, rec, cfg)
			eventually(t, 2*time.Second, "processing", func() bool { return rec.isRunning(shard) })
			h := rec.lastHandle(shard)
			if err := h.SaveCheckpoint(context.Background(), "100"); err != nil {
				t.Fatal(err)
			}

			_, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
				TableName: aws.String("lost"), Key: keyOf(shard), UpdateExpression: aws.String(tc.update),
				ExpressionAttributeValues: func() map[string]types.AttributeValue {
					v := map[string]types.AttributeValue{":one": numAV(1)}
					if tc.name == "owner changed" {
						v[":x"] = strAV("intruder")
					}
					return v
				}(),
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-ctxEnded:
			case <-time.After(3 * cfg.RenewInterval):
				t.Fatal("processor ctx not cancelled after the lease changed")
			}
			select {
			case <-h.Lost():
			default:
				t.Error("Lost() not closed")
			}
			if err := h.SaveCheckpoint(context.Background(), "200"); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("SaveCheckpoint after loss = %v, want ErrLeaseLost", err)
			}
			if err := h.ShardEnded(context.Background(), nil); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("ShardEnded after loss = %v, want ErrLeaseLost", err)
			}
			if l := getLease(t, db, "lost", shard); l.Checkpoint != "100" {
				t.Errorf("checkpoint = %q after loss, want 100 (nothing written)", l.Checkpoint)
			}
			if got := testutil.ToFloat64(w.c.m.lost); got != 1 {
				t.Errorf("lost_total = %v, want 1", got)
			}
			if len(w.c.HeldLeases()) != 0 {
				t.Errorf("HeldLeases = %v after loss", w.c.HeldLeases())
			}
		})
	}
}

// Children are held but not processed until their parents reach SHARD_END.
func TestParentsFirst(t *testing.T) {
	t.Parallel()
	t.Run("split", func(t *testing.T) {
		t.Parallel()
		db := dynamo(t)
		const p, c1, c2 = "shardId-000000000000", "shardId-000000000001", "shardId-000000000002"
		ls := newLister(Shard{ID: p})
		rec := newRecorder()
		endParent := make(chan struct{})
		rec.behave = func(ctx context.Context, h *Handle) {
			if h.ShardID() != p {
				<-ctx.Done()
				return
			}
			select {
			case <-endParent:
				if err := retryWrite(func() error { return h.ShardEnded(ctx, []string{c1, c2}) }); err != nil {
					panic(err)
				}
			case <-ctx.Done():
			}
		}
		cfg := testConfig("split", "w1")
		cfg.InitialPosition = Latest
		cfg.ShardSyncInterval = time.Hour // only the SHARD_END trigger syncs
		startWorker(t, db, ls, rec, cfg)
		eventually(t, 2*time.Second, "parent processing", func() bool { return rec.isRunning(p) })
		if seq, _ := rec.lastHandle(p).Checkpoint(); seq != Latest {
			t.Errorf("parent starts at %s, want LATEST (initial position)", seq)
		}

		// The split happens; the shard sync that ShardEnded triggers finds the children.
		ls.set(Shard{ID: p, Closed: true},
			Shard{ID: c1, ParentShardIDs: []string{p}}, Shard{ID: c2, ParentShardIDs: []string{p}})
		close(endParent)
		took := eventually(t, 2*time.Second, "children processing", func() bool { return rec.isRunning(c1) && rec.isRunning(c2) })
		t.Logf("children started %s after the parent's SHARD_END", took)
		for _, c := range []string{c1, c2} {
			if seq, _ := rec.lastHandle(c).Checkpoint(); seq != TrimHorizon {
				t.Errorf("child %s starts at %s, want TRIM_HORIZON (nothing after the parent's end lost)", c, seq)
			}
		}
		eventually(t, 2*time.Second, "parent lease released", func() bool { return getLease(t, db, "split", p).Owner == "" })
	})

	t.Run("merge", func(t *testing.T) {
		t.Parallel()
		db := dynamo(t)
		const p1, p2, c = "shardId-000000000000", "shardId-000000000001", "shardId-000000000002"
		ls := newLister(Shard{ID: p1, Closed: true}, Shard{ID: p2, Closed: true},
			Shard{ID: c, ParentShardIDs: []string{p1, p2}})
		rec := newRecorder()
		end := map[string]chan struct{}{p1: make(chan struct{}), p2: make(chan struct{})}
		rec.behave = func(ctx context.Context, h *Handle) {
			ch, ok := end[h.ShardID()]
			if !ok {
				<-ctx.Done()
				return
			}
			select {
			case <-ch:
				if err := retryWrite(func() error { return h.ShardEnded(ctx, []string{c}) }); err != nil {
					panic(err)
				}
			case <-ctx.Done():
			}
		}
		w := startWorker(t, db, ls, rec, testConfig("merge", "w1"))
		eventually(t, 2*time.Second, "parents processing", func() bool { return rec.isRunning(p1) && rec.isRunning(p2) })
		if !slices.Contains(w.c.HeldLeases(), c) {
			t.Errorf("child not held while waiting: %v", w.c.HeldLeases())
		}
		close(end[p1])
		eventually(t, 2*time.Second, "p1 ended", func() bool { return getLease(t, db, "merge", p1).Ended() })
		time.Sleep(3 * testTake) // several take cycles: the child must still wait for p2
		if rec.startCount(c) != 0 {
			t.Fatal("merged child started before its second parent ended")
		}
		close(end[p2])
		eventually(t, 2*time.Second, "child processing", func() bool { return rec.isRunning(c) })
	})
}

// Shard sync deletes leases of shards the stream dropped, once their
// children have leases, and nothing else.
func TestShardSyncDeletesStale(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	createTable(t, db, "stale")
	item := func(key, cp string, children ...string) map[string]types.AttributeValue {
		it := map[string]types.AttributeValue{attrKey: strAV(key), attrCounter: numAV(5), attrCheckpoint: strAV(cp)}
		if len(children) > 0 {
			it[attrChildren] = &types.AttributeValueMemberSS{Value: children}
		}
		return it
	}
	putItems(t, db, "stale", []map[string]types.AttributeValue{
		item("gone-ended", ShardEnd, "child"),    // dropped by the stream, child leased: delete
		item("kept-ended", ShardEnd, "child"),    // still listed: keep
		item("gone-open", "4959000"),             // dropped, unfinished, unowned: delete (nobody can read it)
		item("gone-ended-2", ShardEnd, "child2"), // child listed, lease created by this sync: delete
	})
	ls := newLister(Shard{ID: "kept-ended", Closed: true}, Shard{ID: "child", ParentShardIDs: []string{"gone-ended", "kept-ended"}},
		Shard{ID: "child2", ParentShardIDs: []string{"gone-ended-2"}})
	putItems(t, db, "stale", []map[string]types.AttributeValue{item("child", TrimHorizon)})
	w := startWorker(t, db, ls, newRecorder(), testConfig("stale", "w1"))
	for key, want := range map[string]bool{"gone-ended": false, "kept-ended": true, "gone-open": false, "gone-ended-2": false, "child": true, "child2": true} {
		if got := getItem(t, db, "stale", key) != nil; got != want {
			t.Errorf("lease %s exists = %v, want %v", key, got, want)
		}
	}
	if got := testutil.ToFloat64(w.c.m.shardSyncs); got < 1 {
		t.Errorf("shard_syncs_total = %v", got)
	}
}

func TestChildrenLeased(t *testing.T) {
	t.Parallel()
	listed := map[string]Shard{"c1": {ID: "c1"}, "c2": {ID: "c2"}}
	for _, tc := range []struct {
		name     string
		children []string
		leased   []string
		want     bool
	}{
		{"all leased", []string{"c1", "c2"}, []string{"c1", "c2"}, true},
		{"one listed child without lease", []string{"c1", "c2"}, []string{"c1"}, false},
		{"child gone from stream and table", []string{"c3"}, nil, true},
		{"no children recorded", nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leased := map[string]Lease{}
			for _, k := range tc.leased {
				leased[k] = Lease{Key: k}
			}
			if got := childrenLeased(Lease{Key: "p", Checkpoint: ShardEnd, ChildShardIDs: tc.children}, leased, listed); got != tc.want {
				t.Errorf("childrenLeased = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	ls := func(owners ...string) []Lease {
		var out []Lease
		for i, o := range owners {
			out = append(out, Lease{Key: fmt.Sprintf("s%02d", i), Owner: o})
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		leases     []Lease
		expired    []int // indexes
		held       []int
		maxHeld    int
		maxSteal   int
		wantTake   int
		wantSteal  int
		wantTarget int
	}{
		{"fresh table: take all unowned", ls("", "", "", ""), []int{0, 1, 2, 3}, nil, 0, 1, 4, 0, 4},
		{"capped by max leases", ls("", "", "", ""), []int{0, 1, 2, 3}, nil, 3, 1, 3, 0, 3},
		{"join: steal one from the loaded", ls("a", "a", "a", "a"), nil, nil, 0, 1, 0, 1, 2},
		{"join: steal two when allowed", ls("a", "a", "a", "a"), nil, nil, 0, 5, 0, 2, 2},
		{"never steal below target", ls("a", "a", "b", "b", "me"), nil, []int{4}, 0, 1, 0, 0, 2},
		{"victim above target", ls("a", "a", "a", "b", "me", "me"), nil, []int{4, 5}, 0, 1, 0, 0, 2},
		{"expired before stealing", ls("a", "a", "a", "dead"), []int{3}, nil, 0, 1, 1, 0, 2},
		{"balanced: nothing", ls("a", "me"), nil, []int{1}, 0, 1, 0, 0, 1},
		{"empty table", nil, nil, nil, 0, 1, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := view{self: "me", leases: tc.leases, expired: map[string]bool{}, held: map[string]bool{}, maxHeld: tc.maxHeld, maxSteal: tc.maxSteal}
			for _, i := range tc.expired {
				v.expired[tc.leases[i].Key] = true
			}
			for _, i := range tc.held {
				v.held[tc.leases[i].Key] = true
			}
			take, steal, target := plan(v, rand.New(rand.NewPCG(1, 2)))
			if len(take) != tc.wantTake || len(steal) != tc.wantSteal || target != tc.wantTarget {
				t.Errorf("plan = take %d steal %d target %d, want %d %d %d", len(take), len(steal), target, tc.wantTake, tc.wantSteal, tc.wantTarget)
			}
			for _, l := range steal {
				if v.held[l.Key] || v.expired[l.Key] || l.Owner == "me" {
					t.Errorf("stole %+v", l)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultConfig()
	ok.TableName = "app"
	for _, tc := range []struct {
		name    string
		mut     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero durations take defaults", func(c *Config) { c.FailoverTime, c.TakeInterval, c.ShardSyncInterval = 0, 0, 0 }, ""},
		{"no table", func(c *Config) { c.TableName = "" }, "lease.table_name is empty"},
		{"short table", func(c *Config) { c.TableName = "ab" }, "lease.table_name"},
		{"tiny failover", func(c *Config) { c.FailoverTime = time.Millisecond }, "lease.failover_time"},
		{"renew >= failover", func(c *Config) { c.RenewInterval = 10 * time.Second }, "lease.renew_interval"},
		{"bad position", func(c *Config) { c.InitialPosition = "EARLIEST" }, "lease.initial_position"},
		{"negative max", func(c *Config) { c.MaxLeasesPerWorker = -1 }, "lease.max_leases_per_worker"},
		{"request timeout not below failover", func(c *Config) { c.RequestTimeout = 10 * time.Second }, "APIGW_CONNECTOR_LEASE_REQUEST_TIMEOUT"},
		{"negative stable scan", func(c *Config) { c.StableScanInterval = -time.Second }, "lease.stable_scan_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tc.mut(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Validate = %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate = %v, want error with %q", err, tc.wantErr)
			}
		})
	}
	d := Config{TableName: "app", FailoverTime: 9 * time.Second}.withDefaults()
	if d.RenewInterval != 3*time.Second || d.TakeInterval != time.Second || d.MaxLeasesToSteal != 1 || d.WorkerID == "" ||
		d.RequestTimeout != 1800*time.Millisecond || d.StableScanInterval != 22500*time.Millisecond {
		t.Errorf("withDefaults = %+v", d)
	}
}
