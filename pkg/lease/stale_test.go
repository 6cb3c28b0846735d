package lease

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// staleDB answers scans from a frozen snapshot, like a replica that has not
// seen the latest writes yet.
type staleDB struct {
	DynamoDBAPI
	mu     sync.Mutex
	frozen *dynamodb.ScanOutput
}

func (s *staleDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	s.mu.Lock()
	frozen := s.frozen
	s.mu.Unlock()
	if frozen != nil {
		return frozen, nil
	}
	return s.DynamoDBAPI.Scan(ctx, in, opts...)
}

// An eventually consistent scan that has not seen our own writes yet
// returns the lease as we wrote it, not as it was: the taker must not read
// our fresh take as another owner's.
func TestScanNotOlderThanOwnWrites(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const name, key = "stale", "shardId-000000000000"
	createTable(t, db, name)
	putItems(t, db, name, []map[string]types.AttributeValue{{
		attrKey: strAV(key), attrOwner: strAV("old-owner"), attrCounter: numAV(5), attrCheckpoint: strAV(TrimHorizon),
		attrCheckpointOwner: strAV("older-owner"),
	}})
	sdb := &staleDB{DynamoDBAPI: db}
	tbl, _, _ := testTable(t, sdb, name)
	ctx := context.Background()
	before, err := tbl.scan(ctx)
	if err != nil || len(before) != 1 {
		t.Fatalf("scan = %v, %v", before, err)
	}
	snap, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: &tbl.name})
	if err != nil {
		t.Fatal(err)
	}
	sdb.mu.Lock()
	sdb.frozen = snap
	sdb.mu.Unlock()

	scanOne := func() Lease {
		t.Helper()
		ls, err := tbl.scan(ctx)
		if err != nil || len(ls) != 1 {
			t.Fatalf("scan = %v, %v", ls, err)
		}
		return ls[0]
	}
	taken, err := tbl.take(ctx, before[0], "me")
	if err != nil {
		t.Fatal(err)
	}
	if got := scanOne(); got.Owner != "me" || got.Counter != 6 || got.CheckpointOwner != "" {
		t.Errorf("stale scan after take = %+v, want owner me, counter 6, no checkpointOwner", got)
	}
	if err := tbl.renew(ctx, key, taken.Counter, "me"); err != nil {
		t.Fatal(err)
	}
	if err := tbl.checkpoint(ctx, key, taken.Counter+1, "me", ShardEnd, 0, []string{"shardId-000000000001"}); err != nil {
		t.Fatal(err)
	}
	if got := scanOne(); got.Owner != "me" || got.Counter != 8 || !got.Ended() || len(got.ChildShardIDs) != 1 {
		t.Errorf("stale scan after renew and SHARD_END = %+v, want owner me, counter 8, SHARD_END with child", got)
	}
	if err := tbl.release(ctx, key, 8, "me"); err != nil {
		t.Fatal(err)
	}
	if got := scanOne(); got.Owner != "" || got.Counter != 9 || !got.Ended() {
		t.Errorf("stale scan after release = %+v, want unowned, counter 9, SHARD_END", got)
	}

	// Only for a while: past the window the table's answer stands.
	tbl.state.mu.Lock()
	tbl.state.window = time.Millisecond
	tbl.state.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	if got := scanOne(); got.Owner != "old-owner" || got.Counter != 5 {
		t.Errorf("stale scan past the window = %+v, want the stale row as read", got)
	}
	// A newer row than our write is returned as read.
	sdb.mu.Lock()
	sdb.frozen = nil
	sdb.mu.Unlock()
	if got := scanOne(); got.Counter != 9 {
		t.Errorf("fresh scan = %+v, want counter 9", got)
	}
}

// omitDB leaves some rows out of scans, like a replica that has not seen
// them yet, and counts reads of single items.
type omitDB struct {
	DynamoDBAPI
	omit map[string]bool
	gets atomic.Int32
}

func (o *omitDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := o.DynamoDBAPI.Scan(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	cp := *out
	cp.Items = slices.DeleteFunc(slices.Clone(out.Items), func(it map[string]types.AttributeValue) bool { return o.omit[itemKey(it)] })
	return &cp, nil
}

func (o *omitDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	o.gets.Add(1)
	return o.DynamoDBAPI.GetItem(ctx, in, opts...)
}

// A scan that has a child's lease but not yet its parent's (created just
// before it) still returns the parent: a missing parent counts as finished,
// and the child would start before it. A parent really gone is read once.
func TestScanAddsParentsItMissed(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const name = "missed_parents"
	createTable(t, db, name)
	lease := func(key string, parents ...string) map[string]types.AttributeValue {
		it := map[string]types.AttributeValue{attrKey: strAV(key), attrCounter: numAV(0), attrCheckpoint: strAV(TrimHorizon)}
		if len(parents) > 0 {
			it[attrParents] = &types.AttributeValueMemberSS{Value: parents}
		}
		return it
	}
	putItems(t, db, name, []map[string]types.AttributeValue{
		lease("shardId-000000000000"),
		lease("shardId-000000000001", "shardId-000000000000"),
		lease("shardId-000000000002", "shardId-000000000001", "shardId-000000000099"), // 99: deleted long ago
	})
	odb := &omitDB{DynamoDBAPI: db, omit: map[string]bool{"shardId-000000000000": true, "shardId-000000000001": true}}
	tbl, _, _ := testTable(t, odb, name)
	for i := range 3 {
		got, err := tbl.scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(got))
		for _, l := range got {
			keys = append(keys, l.Key)
		}
		slices.Sort(keys)
		if want := []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002"}; !slices.Equal(keys, want) {
			t.Errorf("scan %d = %v, want %v (parents the scan missed added)", i, keys, want)
		}
	}
	// Each scan re-reads the two parents that exist; the gone one only once.
	if got := odb.gets.Load(); got != 3*2+1 {
		t.Errorf("%d single reads over 3 scans, want 7 (the gone parent read once)", got)
	}
}
