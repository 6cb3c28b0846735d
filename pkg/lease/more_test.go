package lease

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A Java KCL table whose parent lease was already cleaned up while the
// stream still lists the parent: the parent is not leased again (no replay)
// and the children run at once.
func TestNoLeaseForFinishedAncestors(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	createTable(t, db, "cleaned")
	const gp, p, c1, c2 = "shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"
	putItems(t, db, "cleaned", []map[string]types.AttributeValue{
		{attrKey: strAV(c1), attrCounter: numAV(3), attrCheckpoint: strAV("4959001"), attrParents: &types.AttributeValueMemberSS{Value: []string{p}}},
		{attrKey: strAV(c2), attrCounter: numAV(3), attrCheckpoint: strAV(TrimHorizon), attrParents: &types.AttributeValueMemberSS{Value: []string{p}}},
	})
	ls := newLister(Shard{ID: gp, Closed: true}, Shard{ID: p, ParentShardIDs: []string{gp}, Closed: true},
		Shard{ID: c1, ParentShardIDs: []string{p}}, Shard{ID: c2, ParentShardIDs: []string{p}})
	rec := newRecorder()
	startWorker(t, db, ls, rec, testConfig("cleaned", "w1"))
	eventually(t, 2*time.Second, "children processing", func() bool { return slices.Equal(rec.runningShards(), []string{c1, c2}) })
	for _, k := range []string{gp, p} {
		if getItem(t, db, "cleaned", k) != nil {
			t.Errorf("lease created for finished ancestor %s", k)
		}
	}
}

// Shutdown bounded by its ctx: leases are released anyway, and a processor
// that is still running can no longer write.
func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	rec := newRecorder()
	unblock := make(chan struct{})
	lateErr := make(chan error, 1)
	rec.behave = func(ctx context.Context, h *Handle) {
		<-ctx.Done()
		<-unblock // ignores shutdown for a while
		lateErr <- h.SaveCheckpoint(context.Background(), "4959")
	}
	w := startWorker(t, db, newLister(shardIDs(1)...), rec, testConfig("stuck", "w1"))
	eventually(t, 2*time.Second, "processing", func() bool { return rec.isRunning("shardId-000000000000") })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := w.c.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	if l := getLease(t, db, "stuck", "shardId-000000000000"); l.Owner != "" {
		t.Errorf("lease owner = %q after Shutdown, want released", l.Owner)
	}
	close(unblock)
	if err := <-lateErr; !errors.Is(err, ErrLeaseLost) {
		t.Errorf("late SaveCheckpoint = %v, want ErrLeaseLost", err)
	}
	if l := getLease(t, db, "stuck", "shardId-000000000000"); l.Checkpoint != TrimHorizon {
		t.Errorf("checkpoint = %q, want untouched TRIM_HORIZON", l.Checkpoint)
	}
	eventually(t, 2*time.Second, "processor returned", func() bool { return !rec.isRunning("shardId-000000000000") })
}

// A processor that returns while holding its lease (say, a read error)
// releases it; it is taken again and restarted from its checkpoint.
func TestProcessorReturnRetakes(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	rec := newRecorder()
	rec.behave = func(ctx context.Context, h *Handle) {
		if seq, _ := h.Checkpoint(); seq == TrimHorizon {
			_ = h.SaveCheckpoint(ctx, "4959100")
			return // gives up
		}
		<-ctx.Done()
	}
	w := startWorker(t, db, newLister(shardIDs(1)...), rec, testConfig("retake", "w1"))
	const shard = "shardId-000000000000"
	eventually(t, 3*time.Second, "restarted", func() bool { return rec.startCount(shard) == 2 && rec.isRunning(shard) })
	if seq, _ := rec.lastHandle(shard).Checkpoint(); seq != "4959100" {
		t.Errorf("restart from %q, want 4959100", seq)
	}
	if got := testutil.ToFloat64(w.c.m.released); got != 1 {
		t.Errorf("released_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(w.c.m.taken); got != 2 {
		t.Errorf("taken_total = %v, want 2", got)
	}
}

func TestMetricsExposed(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	rec := newRecorder()
	w := startWorker(t, db, newLister(shardIDs(2)...), rec, testConfig("metrics", "w1"))
	eventually(t, 2*time.Second, "processing", func() bool { return len(rec.runningShards()) == 2 })
	if err := rec.lastHandle("shardId-000000000000").SaveCheckpoint(context.Background(), "4959"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(w.c.m.held); got != 2 {
		t.Errorf("held = %v, want 2", got)
	}
	ages := w.c.CheckpointAges()
	if len(ages) != 2 || ages["shardId-000000000000"] > ages["shardId-000000000001"] {
		t.Errorf("CheckpointAges = %v, want 2 entries, shard 0 freshest", ages)
	}
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{
		"apigw_connector_lease_held", "apigw_connector_lease_taken_total", "apigw_connector_lease_checkpoints_total",
		"apigw_connector_lease_shard_syncs_total", "apigw_connector_lease_checkpoint_age_seconds",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s not exposed; have %s", want, strings.Join(names, ", "))
		}
	}
}
