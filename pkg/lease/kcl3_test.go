package lease

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A KCL 3.5 single-table lease table whose Java fleet died: this worker
// takes the dead workers' leases, never the entity rows, and leaves those
// rows and the attributes it does not know as they were.
func TestKCL35TableDeadWorker(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const tbl = "kcl35_app"
	items := loadFixtureTable(t, db, tbl, "testdata/kcl35-single-table.json")
	const s0, s1, s2, s3 = "shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"
	ls := newLister(Shard{ID: s0}, Shard{ID: s1}, Shard{ID: s2, Closed: true}, Shard{ID: s3, ParentShardIDs: []string{s2}})
	// Two workers of at most two leases each: with the entity rows read as
	// unowned leases (taken first), each one's share went to rows it could
	// never take, and the real leases waited forever.
	rec := newRecorder() // shared: it records by shard
	cfg1, cfg2 := testConfig(tbl, "go-worker-1"), testConfig(tbl, "go-worker-2")
	cfg1.MaxLeasesPerWorker, cfg2.MaxLeasesPerWorker = 2, 2
	w1 := startWorker(t, db, ls, rec, cfg1)
	w2 := startWorker(t, db, ls, rec, cfg2)

	want := []string{s0, s1, s3}
	held := func() []string { return slices.Sorted(slices.Values(append(w1.c.HeldLeases(), w2.c.HeldLeases()...))) }
	took := eventually(t, 4*testFailover, "dead worker's leases processed", func() bool { return slices.Equal(rec.runningShards(), want) })
	t.Logf("dead KCL 3.5 worker's leases taken after %s (failover %s): %s", took, testFailover, fmtHeld(w1, w2))
	time.Sleep(2 * testTake) // a few more take cycles: nothing else may be taken
	if got := held(); !slices.Equal(got, want) {
		t.Errorf("held leases = %v, want %v (no entity rows, no SHARD_END lease)", got, want)
	}

	// Entity rows are untouched: no owner, no counter written into them.
	for _, it := range items {
		key := itemKey(it)
		if _, lease := it[attrCounter]; lease {
			continue
		}
		if got := getItem(t, db, tbl, key); !reflect.DeepEqual(got, it) {
			t.Errorf("entity row %s changed:\n got %v\nwant %v", key, got, it)
		}
	}

	// The hand-off in progress (leaseOwner java-worker-b, checkpointOwner
	// java-worker-dead) ends with our take: checkpointOwner removed, one owner
	// switch more; the pending checkpoint and its state stay for the checkpoint.
	l1 := getItem(t, db, tbl, s1)
	if _, ok := l1[attrCheckpointOwner]; ok {
		t.Error("take kept checkpointOwner")
	}
	if l := getLease(t, db, tbl, s1); l.Owner != rec.lastHandle(s1).c.WorkerID() || l.OwnerSwitchesSinceCheckpoint != 2 {
		t.Errorf("taken lease 1 = %+v, want owner %s, 2 owner switches", l, rec.lastHandle(s1).c.WorkerID())
	}
	for _, name := range []string{"throughputKBps", attrPendingCheckpointStat, attrEntityType} {
		if !reflect.DeepEqual(l1[name], items[7][name]) {
			t.Errorf("take changed %s: %v, want %v", name, l1[name], items[7][name])
		}
	}
	if err := rec.lastHandle(s1).SaveCheckpoint(context.Background(), "49651376528192695958129088334453949137860085474143338700"); err != nil {
		t.Fatal(err)
	}
	l1 = getItem(t, db, tbl, s1)
	for _, gone := range []string{attrPendingCheckpoint, attrPendingCheckpointSN, attrPendingCheckpointStat, attrCheckpointOwner} {
		if _, ok := l1[gone]; ok {
			t.Errorf("checkpoint kept %s", gone)
		}
	}
	if l := getLease(t, db, tbl, s1); l.OwnerSwitchesSinceCheckpoint != 0 {
		t.Errorf("owner switches after checkpoint = %d, want 0", l.OwnerSwitchesSinceCheckpoint)
	}
	for _, kept := range []string{"throughputKBps", attrEntityType, attrStartingHashKey, attrEndingHashKey} {
		if !reflect.DeepEqual(l1[kept], items[7][kept]) {
			t.Errorf("checkpoint changed %s: %v, want %v", kept, l1[kept], items[7][kept])
		}
	}
}

// take counts an owner switch only when the lease changes hands (Java
// KCL's getDynamoTakeLeaseUpdate), and always removes checkpointOwner.
func TestTakeOwnerSwitches(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	createTable(t, db, "switches")
	tbl := table{db: db, name: "switches"}
	for i, tc := range []struct {
		name           string
		owner, cpOwner string
		switches, want int64
		noSwitchesAttr bool
	}{
		{name: "unowned", switches: 3, want: 3},
		{name: "unowned, never switched", noSwitchesAttr: true},
		{name: "from another worker", owner: "other", switches: 3, want: 4},
		{name: "from ourselves (restart, same id)", owner: "me", switches: 3, want: 3},
		{name: "hand-off to another, from us", owner: "other", cpOwner: "me", switches: 1, want: 2},
		{name: "hand-off between others", owner: "next", cpOwner: "prev", switches: 1, want: 2},
		{name: "unowned, hand-off from us", cpOwner: "me", switches: 1, want: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("shardId-%012d", i)
			it := map[string]types.AttributeValue{attrKey: strAV(key), attrCounter: numAV(7), attrCheckpoint: strAV(TrimHorizon)}
			if !tc.noSwitchesAttr {
				it[attrOwnerSwitches] = numAV(tc.switches)
			}
			if tc.owner != "" {
				it[attrOwner] = strAV(tc.owner)
			}
			if tc.cpOwner != "" {
				it[attrCheckpointOwner] = strAV(tc.cpOwner)
			}
			putItems(t, db, "switches", []map[string]types.AttributeValue{it})
			l, err := leaseFromItem(it)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tbl.take(context.Background(), l, "me")
			if err != nil {
				t.Fatalf("take: %v", err)
			}
			if got.Owner != "me" || got.Counter != 8 || got.OwnerSwitchesSinceCheckpoint != tc.want || got.CheckpointOwner != "" {
				t.Errorf("after take: %+v, want owner me, counter 8, %d switches, no checkpointOwner", got, tc.want)
			}
		})
	}
}
