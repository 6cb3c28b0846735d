package lease

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestPlanCleanup(t *testing.T) {
	t.Parallel()
	const seq = "49651376528170395212930557711312413419587437112637358098"
	ended := func(key string, children ...string) Lease {
		return Lease{Key: key, Counter: 5, Checkpoint: ShardEnd, ChildShardIDs: children}
	}
	at := func(key, cp string, parents ...string) Lease {
		return Lease{Key: key, Counter: 5, Checkpoint: cp, ParentShardIDs: parents}
	}
	sh := func(id string, parents ...string) Shard { return Shard{ID: id, ParentShardIDs: parents} }
	always := func(Lease) bool { return true }
	never := func(Lease) bool { return false }
	for _, tc := range []struct {
		name   string
		leases []Lease
		shards []Shard
		idle   func(Lease) bool
		want   map[string]string // deleted key -> why
	}{
		{
			name:   "listed parent, child progressed",
			leases: []Lease{ended("s0", "s1"), at("s1", seq, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0")},
			want:   map[string]string{"s0": whyChildrenStarted},
		},
		{
			name:   "listed parent, child at TRIM_HORIZON",
			leases: []Lease{ended("s0", "s1"), at("s1", TrimHorizon, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0")},
		},
		{
			name:   "listed parent, child at LATEST",
			leases: []Lease{ended("s0", "s1"), at("s1", Latest, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0")},
		},
		{
			name:   "listed parent, child at AT_TIMESTAMP",
			leases: []Lease{ended("s0", "s1"), at("s1", AtTimestamp, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0")},
		},
		{
			name:   "listed parent, one of two children progressed",
			leases: []Lease{ended("s0", "s1", "s2"), at("s1", seq, "s0"), at("s2", TrimHorizon, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0"), sh("s2", "s0")},
		},
		{
			name:   "listed parent, second child only in the listing, without lease",
			leases: []Lease{ended("s0", "s1"), at("s1", seq, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0"), sh("s2", "s0")},
		},
		{
			name:   "listed parent, children only in the listing, progressed",
			leases: []Lease{ended("s0"), at("s1", seq, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0")},
			want:   map[string]string{"s0": whyChildrenStarted},
		},
		{
			name:   "listed parent, no children known",
			leases: []Lease{ended("s0")},
			shards: []Shard{sh("s0"), sh("s1")},
		},
		{
			name:   "listed parent whose own parent still has a lease: ancestors first",
			leases: []Lease{ended("s0", "s1"), {Key: "s1", Counter: 5, Checkpoint: ShardEnd, ParentShardIDs: []string{"s0"}, ChildShardIDs: []string{"s2"}}, at("s2", seq, "s1")},
			shards: []Shard{sh("s0"), sh("s1", "s0"), sh("s2", "s1")},
			want:   map[string]string{"s0": whyChildrenStarted},
		},
		{
			name:   "listed, unfinished",
			leases: []Lease{at("s0", seq), at("s1", seq, "s0")},
			shards: []Shard{sh("s0"), sh("s1", "s0")},
		},
		{
			name:   "gone, finished, child leased at TRIM_HORIZON",
			leases: []Lease{ended("s0", "s1"), at("s1", TrimHorizon, "s0")},
			shards: []Shard{sh("s1", "s0")},
			want:   map[string]string{"s0": whyGoneFinished},
		},
		{
			name:   "gone, finished, listed child without lease",
			leases: []Lease{ended("s0", "s1")},
			shards: []Shard{sh("s1", "s0")},
		},
		{
			name:   "gone, finished, children gone too",
			leases: []Lease{ended("s0", "s1")},
			shards: []Shard{sh("s5")},
			want:   map[string]string{"s0": whyGoneFinished},
		},
		{
			name:   "gone, unfinished, idle, child leased",
			leases: []Lease{at("s0", seq), at("s1", TrimHorizon, "s0")},
			shards: []Shard{sh("s1", "s0")},
			idle:   always,
			want:   map[string]string{"s0": whyGoneUnfinished},
		},
		{
			name:   "gone, unfinished, no children",
			leases: []Lease{at("s0", seq)},
			shards: []Shard{sh("s3")},
			idle:   always,
			want:   map[string]string{"s0": whyGoneUnfinished},
		},
		{
			name:   "gone, unfinished, still renewed",
			leases: []Lease{at("s0", seq), at("s1", TrimHorizon, "s0")},
			shards: []Shard{sh("s1", "s0")},
			idle:   never,
		},
		{
			name:   "gone, unfinished, listed child not leased yet",
			leases: []Lease{at("s0", seq)},
			shards: []Shard{sh("s1", "s0")},
			idle:   always,
		},
		{
			name:   "not listed but newer than the listing",
			leases: []Lease{at("s7", TrimHorizon, "s3")},
			shards: []Shard{sh("s3")},
			idle:   always,
		},
		{
			name:   "empty listing",
			leases: []Lease{ended("s0"), at("s1", seq)},
			idle:   always,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			leased := map[string]Lease{}
			for _, l := range tc.leases {
				leased[l.Key] = l
			}
			listed := map[string]Shard{}
			kids := map[string][]string{}
			for _, s := range tc.shards {
				listed[s.ID] = s
				for _, p := range s.ParentShardIDs {
					kids[p] = append(kids[p], s.ID)
				}
			}
			idle := tc.idle
			if idle == nil {
				idle = func(l Lease) bool { t.Errorf("idle(%s) asked", l.Key); return false }
			}
			got := map[string]string{}
			for _, d := range planCleanup(tc.leases, leased, listed, kids, idle) {
				got[d.lease.Key] = d.why
			}
			if len(got) != len(tc.want) {
				t.Fatalf("deletions = %v, want %v", got, tc.want)
			}
			for k, why := range tc.want {
				if got[k] != why {
					t.Errorf("deletions = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// A parent gone from the stream with an unfinished lease (its records
// expired before anyone finished it) no longer blocks its children: its
// lease is deleted once it is idle, and the children start.
func TestGoneUnfinishedParentUnblocksChildren(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const tbl = "gone_parent"
	createTable(t, db, tbl)
	const p, c = "shardId-000000000000", "shardId-000000000001"
	putItems(t, db, tbl, []map[string]types.AttributeValue{
		{attrKey: strAV(p), attrOwner: strAV("dead-java-worker"), attrCounter: numAV(40), attrCheckpoint: strAV("4959000"),
			attrCheckpointSub: numAV(0), attrOwnerSwitches: numAV(0), attrChildren: &types.AttributeValueMemberSS{Value: []string{c}}},
	})
	rec := newRecorder()
	w := startWorker(t, db, newLister(Shard{ID: c, ParentShardIDs: []string{p}}), rec, testConfig(tbl, "w1"))
	took := eventually(t, 5*testFailover, "child processing", func() bool { return rec.isRunning(c) })
	t.Logf("child started %s after start (failover %s)", took, testFailover)
	if getItem(t, db, tbl, p) != nil {
		t.Error("gone parent's lease still there")
	}
	if seq, _ := rec.lastHandle(c).Checkpoint(); seq != TrimHorizon {
		t.Errorf("child starts at %s, want TRIM_HORIZON", seq)
	}
	if slices.Contains(w.c.HeldLeases(), p) {
		t.Error("gone parent's lease held")
	}
}

// A finished lease of a shard the stream still has is deleted once its
// child made progress, not at the end of the retention period.
func TestFinishedLeaseDeletedOnceChildrenStarted(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	const tbl = "finished"
	createTable(t, db, tbl)
	const p, c = "shardId-000000000000", "shardId-000000000001"
	putItems(t, db, tbl, []map[string]types.AttributeValue{
		{attrKey: strAV(p), attrCounter: numAV(9), attrCheckpoint: strAV(ShardEnd), attrCheckpointSub: numAV(0),
			attrOwnerSwitches: numAV(0), attrChildren: &types.AttributeValueMemberSS{Value: []string{c}}},
	})
	rec := newRecorder()
	progressed := make(chan struct{})
	rec.behave = func(ctx context.Context, h *Handle) {
		<-progressed
		if err := h.SaveCheckpoint(ctx, "49651376528170395212930557711312413419587437112637358098"); err != nil {
			t.Errorf("SaveCheckpoint: %v", err)
		}
		<-ctx.Done()
	}
	cfg := testConfig(tbl, "w1")
	cfg.ShardSyncInterval = 200 * time.Millisecond
	ls := newLister(Shard{ID: p, Closed: true}, Shard{ID: c, ParentShardIDs: []string{p}})
	w := startWorker(t, db, ls, rec, cfg)
	eventually(t, 2*time.Second, "child processing", func() bool { return rec.isRunning(c) })
	time.Sleep(3 * cfg.ShardSyncInterval) // several syncs: the child is still at TRIM_HORIZON
	if getItem(t, db, tbl, p) == nil {
		t.Fatal("parent's lease deleted while its child had not started")
	}
	close(progressed)
	took := eventually(t, 3*time.Second, "parent lease deleted", func() bool { return getItem(t, db, tbl, p) == nil })
	t.Logf("finished parent deleted %s after its child's first checkpoint", took)
	// Not recreated by later syncs: its child is leased.
	time.Sleep(3 * cfg.ShardSyncInterval)
	if getItem(t, db, tbl, p) != nil {
		t.Error("finished parent's lease recreated")
	}
	if got := w.c.HeldLeases(); !slices.Equal(got, []string{c}) {
		t.Errorf("HeldLeases = %v, want only the child", got)
	}
}
