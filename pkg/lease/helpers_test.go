package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/wallarm/apigw-connector/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Test timings: small failover so expiry tests take seconds.
const (
	testFailover = 1500 * time.Millisecond
	testRenew    = 500 * time.Millisecond
	testTake     = 200 * time.Millisecond
)

func testLogger() *slog.Logger {
	if os.Getenv("LEASE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// dynamo starts a dynalite for the test and returns a client.
func dynamo(t *testing.T) *dynamodb.Client {
	t.Helper()
	return testenv.DynamoDBClient(t, testenv.StartDynalite(t))
}

// lister is a ShardLister the test changes.
type lister struct {
	mu     sync.Mutex
	shards []Shard
}

func newLister(shards ...Shard) *lister { return &lister{shards: shards} }

func (l *lister) ListShards(context.Context) ([]Shard, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.shards), nil
}

func (l *lister) set(shards ...Shard) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shards = shards
}

func shardIDs(n int) []Shard {
	var out []Shard
	for i := range n {
		out = append(out, Shard{ID: fmt.Sprintf("shardId-%012d", i)})
	}
	return out
}

// recorder is a Processor recording what it was asked to do. By default a
// shard's processor runs until its ctx ends; behave overrides per shard.
type recorder struct {
	mu      sync.Mutex
	running map[string]*Handle
	starts  map[string]int
	handles map[string][]*Handle
	behave  func(ctx context.Context, h *Handle) // nil: block until ctx done
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{running: map[string]*Handle{}, starts: map[string]int{}, handles: map[string][]*Handle{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) ProcessShard(ctx context.Context, h *Handle) {
	r.mu.Lock()
	r.running[h.ShardID()] = h
	r.starts[h.ShardID()]++
	r.handles[h.ShardID()] = append(r.handles[h.ShardID()], h)
	behave := r.behave
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.running[h.ShardID()] == h {
			delete(r.running, h.ShardID())
		}
		r.mu.Unlock()
	}()
	if behave != nil {
		behave(ctx, h)
		return
	}
	<-ctx.Done()
}

func (r *recorder) isRunning(shard string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[shard] != nil
}

func (r *recorder) runningShards() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.running {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (r *recorder) lastHandle(shard string) *Handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	hs := r.handles[shard]
	if len(hs) == 0 {
		return nil
	}
	return hs[len(hs)-1]
}

func (r *recorder) startCount(shard string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts[shard]
}

type worker struct {
	c      *Coordinator
	reg    *prometheus.Registry
	rec    *recorder
	cancel context.CancelFunc
}

func testConfig(table, id string) Config {
	cfg := DefaultConfig()
	cfg.TableName = table
	cfg.WorkerID = id
	cfg.FailoverTime = testFailover
	cfg.RenewInterval = testRenew
	cfg.TakeInterval = testTake
	cfg.ShardSyncInterval = time.Second
	// failover/5 (300ms) is too tight for dynalite on a loaded 2-core box:
	// timeouts there would expire leases no test meant to lose.
	cfg.RequestTimeout = time.Second
	return cfg
}

// startWorker starts a coordinator; cleanup shuts it down.
func startWorker(t *testing.T, db DynamoDBAPI, ls ShardLister, rec *recorder, cfg Config) *worker {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := NewCoordinator(db, ls, rec, cfg, reg, testLogger().With("w", cfg.WorkerID))
	if err != nil {
		t.Fatalf("NewCoordinator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start %s: %v", cfg.WorkerID, err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := c.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown %s: %v", cfg.WorkerID, err)
		}
		cancel()
	})
	return &worker{c: c, reg: reg, rec: rec, cancel: cancel}
}

// eventually polls cond every 20ms until true or timeout; returns the time it took.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return testenv.Eventually(t, timeout, 20*time.Millisecond, what, cond)
}

// loadItems reads DynamoDB-JSON items (as `aws dynamodb scan` prints them).
func loadItems(t *testing.T, path string) []map[string]types.AttributeValue {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var items []map[string]types.AttributeValue
	for _, r := range raw {
		item := map[string]types.AttributeValue{}
		for name, typed := range r {
			for typ, v := range typed {
				switch typ {
				case "S":
					var s string
					_ = json.Unmarshal(v, &s)
					item[name] = &types.AttributeValueMemberS{Value: s}
				case "N":
					var s string
					_ = json.Unmarshal(v, &s)
					item[name] = &types.AttributeValueMemberN{Value: s}
				case "SS":
					var ss []string
					_ = json.Unmarshal(v, &ss)
					item[name] = &types.AttributeValueMemberSS{Value: ss}
				default:
					t.Fatalf("%s: unsupported type %s", path, typ)
				}
			}
		}
		items = append(items, item)
	}
	return items
}

func createTable(t *testing.T, db *dynamodb.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (table{db: db, name: name}).ensure(ctx, true); err != nil {
		t.Fatal(err)
	}
}

func putItems(t *testing.T, db *dynamodb.Client, name string, items []map[string]types.AttributeValue) {
	t.Helper()
	for _, it := range items {
		if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(name), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
}

func getItem(t *testing.T, db *dynamodb.Client, name, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(name), Key: keyOf(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func getLease(t *testing.T, db *dynamodb.Client, name, key string) Lease {
	t.Helper()
	item := getItem(t, db, name, key)
	if item == nil {
		t.Fatalf("lease %s missing", key)
	}
	l, err := leaseFromItem(item)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func fmtHeld(ws ...*worker) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "%s=%v ", w.c.WorkerID(), w.c.HeldLeases())
	}
	return b.String()
}

// retryWrite retries a checkpoint write that failed without an answer
// (every call has a deadline, and dynalite on a loaded box can miss it), as
// a real processor would; ErrLeaseLost and ErrShardEnded are final.
func retryWrite(write func() error) error {
	var err error
	for range 5 {
		if err = write(); err == nil || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrShardEnded) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}
