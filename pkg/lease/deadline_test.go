package lease

import (
	"context"
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

// hangDB blocks every call while hung, until the call's ctx ends: a worker
// cut off from DynamoDB (network partition, stuck connections).
type hangDB struct {
	DynamoDBAPI
	hung atomic.Bool
}

func (d *hangDB) wait(ctx context.Context) error {
	if !d.hung.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (d *hangDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.DynamoDBAPI.Scan(ctx, in, opts...)
}

func (d *hangDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.DynamoDBAPI.UpdateItem(ctx, in, opts...)
}

func (d *hangDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.DynamoDBAPI.GetItem(ctx, in, opts...)
}

func (d *hangDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.DynamoDBAPI.PutItem(ctx, in, opts...)
}

func (d *hangDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := d.wait(ctx); err != nil {
		return nil, err
	}
	return d.DynamoDBAPI.DeleteItem(ctx, in, opts...)
}

// stamps records, per shard, when something happened first.
type stamps struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (s *stamps) mark(shard string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	if _, ok := s.at[shard]; !ok {
		s.at[shard] = time.Now()
	}
}

func (s *stamps) get(shard string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[shard]
	return t, ok
}

// A worker whose table hangs stops processing each shard by its own clock
// before another worker can take it: with many leases, the overlap (both
// processing one shard) stays within a renew interval of scheduling slack,
// far below the failover time.
func TestHangingTableStopsBeforeTakeover(t *testing.T) {
	t.Parallel()
	real := dynamo(t)
	hdb := &hangDB{DynamoDBAPI: real}
	const n = 24
	ls := newLister(shardIDs(n)...)

	recA := newRecorder()
	var aStopped stamps
	recA.behave = func(ctx context.Context, h *Handle) {
		<-ctx.Done()
		aStopped.mark(h.ShardID())
	}
	a := startWorker(t, hdb, ls, recA, testConfig("hang", "a"))
	eventually(t, 5*time.Second, "a processes all", func() bool { return len(recA.runningShards()) == n })

	hdb.hung.Store(true)
	hungAt := time.Now()
	recB := newRecorder()
	var bStarted stamps
	recB.behave = func(ctx context.Context, h *Handle) {
		bStarted.mark(h.ShardID())
		<-ctx.Done()
	}
	b := startWorker(t, real, ls, recB, testConfig("hang", "b"))
	eventually(t, 3*testFailover+5*time.Second, "b takes every lease", func() bool { return len(recB.runningShards()) == n })

	var worst time.Duration
	for _, s := range shardIDs(n) {
		bt, _ := bStarted.get(s.ID)
		at, ok := aStopped.get(s.ID)
		if !ok {
			at = time.Now() // still processing
		}
		if d := at.Sub(bt); d > worst {
			worst = d
		}
	}
	t.Logf("hung table: a stopped its last shard %s after the hang; worst overlap %s (failover %s)", latest(&aStopped, n).Sub(hungAt), worst, testFailover)
	if worst > testRenew {
		t.Errorf("worst overlap %s: a kept processing a shard b had taken (bound: own-clock expiry, slack %s)", worst, testRenew)
	}
	_ = a
	_ = b
}

func latest(s *stamps, n int) time.Time {
	var out time.Time
	for _, sh := range shardIDs(n) {
		if t, ok := s.get(sh.ID); ok && t.After(out) {
			out = t
		}
	}
	return out
}

// slowDB adds latency to every write once slow is set.
type slowDB struct {
	DynamoDBAPI
	slow atomic.Bool
}

const slowWrite = 250 * time.Millisecond

func (d *slowDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if d.slow.Load() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(slowWrite):
		}
	}
	return d.DynamoDBAPI.UpdateItem(ctx, in, opts...)
}

// Renewals run in parallel: with many leases and a slow (not failing)
// table, one renew round takes about one call's latency, not the sum
// (16 x 250ms = 4s > the 3s failover here), so no lease looks expired to
// another worker and none expires by the holder's clock. (Timings leave
// room for dynalite, which serves the 16 calls of a round one by one.)
func TestSlowTableManyLeasesStayRenewed(t *testing.T) {
	t.Parallel()
	real := dynamo(t)
	sdb := &slowDB{DynamoDBAPI: real}
	const n = 16
	ls := newLister(shardIDs(n)...)
	cfg := func(id string) Config {
		c := testConfig("slow_renew", id)
		c.FailoverTime, c.RenewInterval, c.RequestTimeout = 3*time.Second, time.Second, time.Second
		return c
	}
	recA := newRecorder()
	a := startWorker(t, sdb, ls, recA, cfg("a"))
	eventually(t, 5*time.Second, "a processes all", func() bool { return len(recA.runningShards()) == n })
	sdb.slow.Store(true)
	b := startWorker(t, real, ls, newRecorder(), cfg("b"))
	time.Sleep(2*3*time.Second + time.Second)
	if got := testutil.ToFloat64(b.c.m.taken); got != 0 {
		t.Errorf("b took %v of a's leases as expired: a's renewals fell behind", got)
	}
	if got := testutil.ToFloat64(a.c.m.lost); got != 0 {
		t.Errorf("a lost_total = %v, want 0 (moves for balance are hand-offs)", got)
	}
}

// hideDB leaves one key out of scans: a replica that lags behind.
type hideDB struct {
	DynamoDBAPI
	hide string
}

func (d *hideDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := d.DynamoDBAPI.Scan(ctx, in, opts...)
	if err != nil || aws.ToBool(in.ConsistentRead) {
		return out, err
	}
	kept := out.Items[:0:0]
	for _, it := range out.Items {
		if k, _ := getS(it, attrKey); k != d.hide {
			kept = append(kept, it)
		}
	}
	out.Items = kept
	return out, nil
}

// An eventually consistent scan that misses a parent (just created, replica
// behind) must not let its child start as if the parent were finished.
func TestMissedParentStillBlocksChild(t *testing.T) {
	t.Parallel()
	real := dynamo(t)
	const tbl = "missed_parent"
	createTable(t, real, tbl)
	const p, ch = "shardId-000000000000", "shardId-000000000001"
	putItems(t, real, tbl, []map[string]types.AttributeValue{
		{attrKey: strAV(p), attrCounter: numAV(3), attrCheckpoint: strAV("4959"), attrOwner: strAV("other")},
		{attrKey: strAV(ch), attrCounter: numAV(0), attrCheckpoint: strAV(TrimHorizon), attrParents: &types.AttributeValueMemberSS{Value: []string{p}}},
	})
	rec := newRecorder()
	cfg := testConfig(tbl, "w1")
	cfg.FailoverTime, cfg.RenewInterval = 10*time.Second, time.Second // the parent's owner stays live
	w := startWorker(t, &hideDB{DynamoDBAPI: real, hide: p}, newLister(Shard{ID: p}, Shard{ID: ch, ParentShardIDs: []string{p}}), rec, cfg)
	eventually(t, 2*time.Second, "child held", func() bool { return slices.Contains(w.c.HeldLeases(), ch) })
	time.Sleep(5 * testTake)
	if n := rec.startCount(ch); n != 0 {
		t.Fatalf("child started %d times while its parent (missed by the scan) is not finished", n)
	}
}
