package lease

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
)

// captureHandler keeps every record's message and "event" attribute.
type captureHandler struct {
	mu     *sync.Mutex
	events map[string]string // message -> event attribute
}

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			ev = a.Value.String()
		}
		return true
	})
	if _, seen := h.events[r.Message]; !seen || ev != "" {
		h.events[r.Message] = ev
	}
	return nil
}
func (h captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h captureHandler) WithGroup(string) slog.Handler      { return h }

// Lease acquisitions, losses and releases carry the "event" attribute that
// pkg/telemetry's rate limiter never suppresses.
func TestLeaseChangesAreLogEvents(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	h := captureHandler{mu: &sync.Mutex{}, events: map[string]string{}}
	cfg := testConfig("events", "w1")
	cfg.FailoverTime = 10 * time.Second
	cfg.RenewInterval = 300 * time.Millisecond
	rec := newRecorder()
	c, err := NewCoordinator(db, newLister(shardIDs(2)...), rec, cfg, prometheus.NewRegistry(), slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "processing", func() bool { return len(rec.runningShards()) == 2 })
	if _, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String("events"), Key: keyOf("shardId-000000000000"),
		UpdateExpression:          aws.String("SET leaseOwner = :x, leaseCounter = leaseCounter + :one"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":x": strAV("intruder"), ":one": numAV(1)},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "loss noticed", func() bool { return len(c.HeldLeases()) == 1 })
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := c.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for msg, want := range map[string]string{"lease acquired": "lease_acquired", "lease lost": "lease_lost", "lease released": "lease_released"} {
		if got := h.events[msg]; got != want {
			t.Errorf("%q logged with event %q, want %q", msg, got, want)
		}
	}
}

// Shard sync can reuse the take loop's last scan while it is fresh.
func TestRecentLeases(t *testing.T) {
	t.Parallel()
	db := dynamo(t)
	rec := newRecorder()
	w := startWorker(t, db, newLister(shardIDs(3)...), rec, testConfig("recent", "w1"))
	eventually(t, 2*time.Second, "processing", func() bool { return len(rec.runningShards()) == 3 })
	eventually(t, 2*time.Second, "a scan that shows all three", func() bool {
		ls, ok := w.c.recentLeases(time.Hour)
		return ok && len(ls) == 3 && ls[0].Key == "shardId-000000000000" && ls[2].Key == "shardId-000000000002"
	})
	if _, ok := w.c.recentLeases(-time.Second); ok {
		t.Error("recentLeases(maxAge < age) = ok, want a stale scan refused")
	}
}
