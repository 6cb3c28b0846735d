package lease

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// The fleet simulation: many in-process workers on one lease table on
// dynalite. In CI it runs a small fleet and asserts the properties; with
// FLEET_SHARDS / FLEET_WORKERS / FLEET_FAILOVER (scripts/bench-fleet.sh) it
// runs a production-sized one and prints the figures.

// fleetDB counts one worker's DynamoDB calls and the items its scans read.
type fleetDB struct {
	DynamoDBAPI
	mu    sync.Mutex
	calls map[string]int
	items int // items returned by Scan
}

func newFleetDB(db DynamoDBAPI) *fleetDB { return &fleetDB{DynamoDBAPI: db, calls: map[string]int{}} }

func (d *fleetDB) note(op string) {
	d.mu.Lock()
	d.calls[op]++
	d.mu.Unlock()
}

func (d *fleetDB) snapshot() (map[string]int, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.calls), d.items
}

func (d *fleetDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	d.note("Scan")
	out, err := d.DynamoDBAPI.Scan(ctx, in, opts...)
	if err == nil {
		d.mu.Lock()
		d.items += len(out.Items)
		d.mu.Unlock()
	}
	return out, err
}

func (d *fleetDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	d.note("Query")
	q, ok := d.DynamoDBAPI.(interface {
		Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	})
	if !ok {
		return nil, fmt.Errorf("query: not supported by %T", d.DynamoDBAPI)
	}
	return q.Query(ctx, in, opts...)
}

func (d *fleetDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	d.note("GetItem")
	return d.DynamoDBAPI.GetItem(ctx, in, opts...)
}

func (d *fleetDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	d.note("UpdateItem")
	return d.DynamoDBAPI.UpdateItem(ctx, in, opts...)
}

func (d *fleetDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.note("PutItem")
	return d.DynamoDBAPI.PutItem(ctx, in, opts...)
}

func (d *fleetDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	d.note("DeleteItem")
	return d.DynamoDBAPI.DeleteItem(ctx, in, opts...)
}

// fleetTracker is every worker's Processor: it knows who processes which
// shard right now, counts processor starts (lease moves) and records any
// moment two workers process one shard at once.
type fleetTracker struct {
	mu       sync.Mutex
	running  map[string]map[string]bool // shard -> workers processing it
	starts   int
	overlaps []string
}

func newFleetTracker() *fleetTracker { return &fleetTracker{running: map[string]map[string]bool{}} }

func (f *fleetTracker) processor(worker string) Processor {
	return ProcessorFunc(func(ctx context.Context, h *Handle) {
		shard := h.ShardID()
		f.mu.Lock()
		if f.running[shard] == nil {
			f.running[shard] = map[string]bool{}
		}
		if len(f.running[shard]) > 0 {
			f.overlaps = append(f.overlaps, fmt.Sprintf("%s: %s started while %v still process it", shard, worker, slices.Sorted(maps.Keys(f.running[shard]))))
		}
		f.running[shard][worker] = true
		f.starts++
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.running[shard], worker)
			f.mu.Unlock()
		}()
		select {
		case <-ctx.Done():
		case <-h.Lost():
		}
	})
}

// perWorker counts the shards each worker processes; shards processed by no
// one count under "".
func (f *fleetTracker) perWorker(shards []Shard) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, s := range shards {
		if len(f.running[s.ID]) == 0 {
			out[""]++
		}
		for w := range f.running[s.ID] {
			out[w]++
		}
	}
	return out
}

func (f *fleetTracker) moves() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

func (f *fleetTracker) overlapList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.overlaps)
}

// balanced: every shard processed by exactly one of the live workers, each
// holding floor or ceil of shards/workers.
func balanced(counts map[string]int, live []string, shards int) bool {
	if counts[""] > 0 {
		return false
	}
	lo, hi := shards/len(live), (shards+len(live)-1)/len(live)
	total := 0
	for _, w := range live {
		n := counts[w]
		if n < lo || n > hi {
			return false
		}
		total += n
	}
	return total == shards
}

func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration", name, v)
		}
		return d
	}
	return def
}

type fleetWorker struct {
	id     string
	c      *Coordinator
	db     *fleetDB
	cancel context.CancelFunc
	killed bool
}

// TestFleet runs a fleet on one table: time to an even balance, no lease
// moving once balanced, recovery after workers are killed, no two workers on
// one shard at once, and the table calls per worker per minute set beside
// what the Java KCL's defaults imply for the same fleet.
func TestFleet(t *testing.T) {
	t.Parallel()
	nShards := envInt(t, "FLEET_SHARDS", 32)
	nWorkers := envInt(t, "FLEET_WORKERS", 4)
	nKill := envInt(t, "FLEET_KILL", max(1, nWorkers/4))
	failover := envDuration(t, "FLEET_FAILOVER", testFailover)
	stable := envDuration(t, "FLEET_STABLE", 4*failover)
	if nKill >= nWorkers {
		t.Fatalf("FLEET_KILL=%d must be below FLEET_WORKERS=%d", nKill, nWorkers)
	}

	db := dynamo(t)
	shards := shardIDs(nShards)
	ls := newLister(shards...)
	tr := newFleetTracker()
	var log *slog.Logger = testLogger()

	workers := make([]*fleetWorker, nWorkers)
	var startWG sync.WaitGroup
	var startErr atomic.Value
	begin := time.Now()
	for i := range workers {
		id := fmt.Sprintf("worker-%02d", i)
		cfg := DefaultConfig()
		cfg.TableName = "fleet"
		cfg.WorkerID = id
		cfg.FailoverTime = failover
		if failover < DefaultConfig().FailoverTime {
			// Scaled-down fleet: keep the take and sync cadence in proportion.
			cfg.TakeInterval = max(50*time.Millisecond, failover/10)
			cfg.ShardSyncInterval = max(time.Second, failover)
		}
		cdb := newFleetDB(db)
		c, err := NewCoordinator(cdb, ls, tr.processor(id), cfg, nil, log.With("w", id))
		if err != nil {
			t.Fatalf("NewCoordinator: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := &fleetWorker{id: id, c: c, db: cdb, cancel: cancel}
		workers[i] = w
		startWG.Add(1)
		go func() {
			defer startWG.Done()
			if err := c.Start(ctx); err != nil {
				startErr.Store(fmt.Errorf("start %s: %w", id, err))
			}
		}()
		t.Cleanup(func() {
			if !w.killed {
				sctx, scancel := context.WithTimeout(context.Background(), 2*failover+5*time.Second)
				defer scancel()
				if err := c.Shutdown(sctx); err != nil {
					t.Errorf("shutdown %s: %v", id, err)
				}
			}
			cancel()
			_ = c.Shutdown(context.Background()) // waits for goroutines after the abrupt stop
		})
	}
	startWG.Wait()
	if err, _ := startErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	live := func() []string {
		var out []string
		for _, w := range workers {
			if !w.killed {
				out = append(out, w.id)
			}
		}
		return out
	}
	limit := 30*failover + 30*time.Second
	waitBalanced := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		for !balanced(tr.perWorker(shards), live(), nShards) {
			if time.Since(start) > limit {
				t.Fatalf("%s: not balanced after %s: %v", what, limit, tr.perWorker(shards))
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	toBalance := waitBalanced("start")
	toBalance += time.Since(begin) - toBalance // measured from the first Start
	movesAtBalance := tr.moves()
	// The last moves keep workers on their fast cadence for a while; the
	// table cost that matters is the stable one, measured after that.
	time.Sleep(min(2*failover+time.Second, stable))

	// Stable window: no lease may move; count table calls.
	before := make([]map[string]int, nWorkers)
	itemsBefore := make([]int, nWorkers)
	for i, w := range workers {
		before[i], itemsBefore[i] = w.db.snapshot()
	}
	time.Sleep(stable)
	flaps := tr.moves() - movesAtBalance
	perMin := map[string]float64{}
	var itemsPerMin float64
	for i, w := range workers {
		after, items := w.db.snapshot()
		for op, n := range after {
			perMin[op] += float64(n-before[i][op]) / stable.Minutes() / float64(nWorkers)
		}
		itemsPerMin += float64(items-itemsBefore[i]) / stable.Minutes() / float64(nWorkers)
	}
	if !balanced(tr.perWorker(shards), live(), nShards) {
		t.Errorf("balance lost during the stable window: %v", tr.perWorker(shards))
	}

	// Kill workers abruptly (a crash: no release), then recover.
	for _, w := range workers[:nKill] {
		w.killed = true
		w.cancel()
	}
	toRecover := waitBalanced("after kill")

	// What the Java KCL's defaults imply for the same fleet at this failover
	// time: its taker scans the whole table every 2 x (failover + 25 ms), each
	// holder renews each lease every failover/3 (one UpdateItem each).
	javaScans := 60 / (2 * (failover.Seconds() + 0.025))
	perWorkerLeases := float64(nShards) / float64(nWorkers)
	javaUpdates := perWorkerLeases * 60 / (failover.Seconds() / 3)
	javaItems := javaScans * float64(nShards)

	ops := slices.Sorted(maps.Keys(perMin))
	var calls string
	for _, op := range ops {
		calls += fmt.Sprintf(" %s=%.1f", op, perMin[op])
	}
	t.Logf("fleet: %d shards, %d workers, failover %s", nShards, nWorkers, failover)
	t.Logf("time to even balance: %s (%d processor starts)", toBalance.Round(10*time.Millisecond), movesAtBalance)
	t.Logf("lease moves in a %s stable window: %d", stable, flaps)
	t.Logf("recovery after killing %d of %d workers: %s", nKill, nWorkers, toRecover.Round(10*time.Millisecond))
	t.Logf("DynamoDB calls per worker per minute (stable):%s; items read by scans %.0f", calls, itemsPerMin)
	t.Logf("Java KCL defaults at the same failover: Scan=%.1f UpdateItem=%.1f; items read by scans %.0f", javaScans, javaUpdates, javaItems)
	t.Logf("table reads vs the Java KCL: %.2fx", itemsPerMin/javaItems)
	if ov := tr.overlapList(); len(ov) > 0 {
		t.Errorf("%d times two workers processed one shard at once, e.g. %s", len(ov), ov[0])
	}
	if flaps > 0 {
		t.Errorf("%d lease moves after the fleet was balanced (flapping)", flaps)
	}
	if os.Getenv("FLEET_REQUIRE_FEWER_READS") != "" && itemsPerMin >= javaItems {
		t.Errorf("items read by scans per worker per minute: %.0f, the Java KCL's defaults imply %.0f", itemsPerMin, javaItems)
	}
}
