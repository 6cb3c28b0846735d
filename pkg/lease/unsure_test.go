package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// lossyDB performs writes for real but, when armed, drops the answer of the
// next renewal: the write lands, the caller sees a timeout. This is what a
// client-side timeout on a slow DynamoDB call looks like.
type lossyDB struct {
	DynamoDBAPI
	dropNext atomic.Bool
	dropAll  atomic.Bool  // drop every renewal's answer
	dropped  atomic.Int64 // answers dropped
}

var errNoAnswer = errors.New("operation error DynamoDB: UpdateItem, context deadline exceeded")

func (d *lossyDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := d.DynamoDBAPI.UpdateItem(ctx, in, opts...)
	if err == nil && *in.UpdateExpression == "SET #c = #c + :one" && (d.dropAll.Load() || d.dropNext.CompareAndSwap(true, false)) {
		d.dropped.Add(1)
		return nil, errNoAnswer
	}
	return out, err
}

func TestUnansweredRenewalDoesNotLoseTheLease(t *testing.T) {
	t.Parallel()
	db := &lossyDB{DynamoDBAPI: dynamo(t)}
	const shard = "shardId-000000000000"
	rec := newRecorder()
	ctxEnded := make(chan struct{})
	rec.behave = func(ctx context.Context, h *Handle) {
		<-ctx.Done()
		close(ctxEnded)
	}
	cfg := testConfig("unsure", "w1")
	cfg.FailoverTime = 10 * time.Second
	cfg.RenewInterval = 200 * time.Millisecond
	w := startWorker(t, db, newLister(shardIDs(1)...), rec, cfg)
	eventually(t, 2*time.Second, "processing", func() bool { return rec.isRunning(shard) })
	h := rec.lastHandle(shard)

	db.dropNext.Store(true)
	eventually(t, 2*time.Second, "the dropped renewal", func() bool { return !db.dropNext.Load() })
	// The next write is refused (the counter moved under our own name) and
	// must be reconciled, not treated as a takeover.
	if err := h.SaveCheckpoint(context.Background(), "4242"); err != nil {
		t.Fatalf("SaveCheckpoint after an unanswered renewal: %v", err)
	}
	eventually(t, 2*time.Second, "renewals going on", func() bool { return testutil.ToFloat64(w.c.m.renewals) >= 3 })
	select {
	case <-ctxEnded:
		t.Fatal("processor stopped: the lease was dropped although nobody else took it")
	default:
	}
	if got := testutil.ToFloat64(w.c.m.lost); got != 0 {
		t.Fatalf("lost_total = %v, want 0", got)
	}
	if l := getLease(t, db.DynamoDBAPI.(*dynamodb.Client), "unsure", shard); l.Checkpoint != "4242" || l.Owner != "w1" {
		t.Fatalf("lease after reconcile: %+v", l)
	}
}

// A renewal whose answer is lost (timeout, or cancelled at shutdown) may
// have moved the counter; the release at shutdown must check before it
// calls the lease lost. Every renewal's answer is dropped here, so the last
// write before the release is always unsure.
func TestReleaseAfterUnansweredRenewal(t *testing.T) {
	t.Parallel()
	db := &lossyDB{DynamoDBAPI: dynamo(t)}
	const shard = "shardId-000000000000"
	rec := newRecorder()
	cfg := testConfig("unsure_release", "w1")
	cfg.FailoverTime = 10 * time.Second
	cfg.RenewInterval = 200 * time.Millisecond
	w := startWorker(t, db, newLister(shardIDs(1)...), rec, cfg)
	eventually(t, 2*time.Second, "processing", func() bool { return rec.isRunning(shard) })
	db.dropAll.Store(true)
	eventually(t, 3*time.Second, "two renewals unanswered", func() bool { return db.dropped.Load() >= 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(w.c.m.lost); got != 0 {
		t.Errorf("lost_total = %v at shutdown, want 0: nobody else took the lease", got)
	}
	if got := testutil.ToFloat64(w.c.m.released); got != 1 {
		t.Errorf("released_total = %v, want 1", got)
	}
	if l := getLease(t, db.DynamoDBAPI.(*dynamodb.Client), "unsure_release", shard); l.Owner != "" {
		t.Errorf("lease owner = %q after shutdown, want released", l.Owner)
	}
}
