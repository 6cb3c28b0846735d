package kinesis

import (
	"sync"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
)

// faultFor is how long each drill keeps its fault on.
const faultFor = 3 * time.Second

// drill produces while the fault is on, ends it, and checks that every call is delivered and
// every checkpoint reaches the last record: nothing lost, everything recovered.
func drill(t *testing.T, e *env, p *testenv.FaultProxy, f testenv.Faults, ws ...*worker) {
	t.Helper()
	e.produce(10, 5, 10)
	e.waitDelivered(waitLong) // flowing before the fault
	p.Set(f)
	e.produce(10, 5, 10)
	time.Sleep(faultFor)
	e.produce(5, 5, 10)
	p.Clear()
	cleared := time.Now()
	checkDups(t, e.waitDelivered(waitLong), ws...)
	delivered := time.Since(cleared)
	e.waitCheckpointsAtEnd(15 * time.Second)
	t.Logf("fault %+v for %s: all delivered %s after it ended, checkpoints at the end %s after; proxy %+v",
		f, faultFor, delivered.Round(time.Millisecond), time.Since(cleared).Round(time.Millisecond), p.Stats())
}

// TestFaultsOnTheWire puts a fault proxy between the worker and Kinesis, or between the worker
// and DynamoDB: latency, hangs, resets and throttling for a few seconds lose nothing, and
// everything recovers once the fault ends.
func TestFaultsOnTheWire(t *testing.T) {
	kep := testenv.StartKinesisMock(t)
	dep := testenv.StartDynalite(t)
	// Short enough that a hung call costs little, long enough for a loaded 2-core machine.
	fast := func(c *Config) { c.RequestTimeout = 2 * time.Second }

	kinesisFaults := []struct {
		name string
		f    testenv.Faults
	}{
		{"latency", testenv.Faults{Latency: 300 * time.Millisecond}},
		{"hang", testenv.Faults{Hang: 1}},
		{"reset", testenv.Faults{Reset: 1}},
		{"throttle", testenv.Faults{ThrottleFraction: 0.7, Throttle: testenv.KinesisThrottle}},
	}
	for _, tt := range kinesisFaults {
		t.Run("kinesis_"+tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kep, dep, 2)
			p := testenv.StartFaultProxy(t, kep)
			w := e.startWorkerVia("w1", testenv.AWSConfig(t, p.URL, dep), fast)
			drill(t, e, p, tt.f, w)
			if s := p.Stats(); tt.f.Hang+tt.f.Reset+tt.f.ThrottleFraction > 0 && s.Hung+s.Reset+s.Throttled == 0 {
				t.Errorf("the fault never hit a request: %+v", s)
			}
		})
	}

	dynamoFaults := []struct {
		name string
		f    testenv.Faults
	}{
		{"latency", testenv.Faults{Latency: 150 * time.Millisecond}},
		{"reset", testenv.Faults{Reset: 1}},
		{"throttle", testenv.Faults{ThrottleFraction: 0.5, Throttle: testenv.DynamoDBThrottle}},
		{"hang", testenv.Faults{Hang: 1}},
	}
	for _, tt := range dynamoFaults {
		t.Run("dynamodb_"+tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kep, dep, 2)
			p := testenv.StartFaultProxy(t, dep)
			w := e.startWorkerVia("w1", testenv.AWSConfig(t, kep, p.URL), fast)
			eventually(t, 10*time.Second, "worker holding both shards", func() bool { return owners(e.leases())["w1"] == 2 })
			drill(t, e, p, tt.f, w)
		})
	}

	// DynamoDB hangs for one of two workers: the other takes its shards after the failover
	// time, and no shard is read by both for longer than the failover time.
	t.Run("dynamodb_hang_two_workers", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kep, dep, 2)
		ov := newOverlaps()
		e.onStart = func(w, shard, _ string) { ov.start(w, shard) }
		e.onEnd = ov.end
		p := testenv.StartFaultProxy(t, dep)
		hung := e.startWorkerVia("hung", testenv.AWSConfig(t, kep, p.URL), fast)
		eventually(t, 10*time.Second, "first worker holding both shards", func() bool { return owners(e.leases())["hung"] == 2 })
		other := e.startWorker("other", fast)
		eventually(t, 15*time.Second, "one shard each", func() bool {
			o := owners(e.leases())
			return o["hung"] == 1 && o["other"] == 1
		})
		e.produce(10, 5, 10)
		e.waitDelivered(waitLong)
		p.Set(testenv.Faults{Hang: 1})
		e.produce(10, 5, 10)
		took := eventually(t, 15*time.Second, "the other worker holding both shards", func() bool {
			return owners(e.leases())["other"] == 2
		})
		e.produce(10, 5, 10)
		time.Sleep(testFailover)
		p.Clear()
		checkDups(t, e.waitDelivered(waitLong), hung, other)
		worst, shard := ov.max(time.Now())
		t.Logf("DynamoDB hung for one worker: the other held both shards %s later; worst overlap %s on %q (failover %s)",
			took.Round(time.Millisecond), worst.Round(time.Millisecond), shard, testFailover)
		if worst > testFailover {
			t.Errorf("shard %s read by two workers at once for %s, want at most the failover time %s", shard, worst, testFailover)
		}
	})
}

// overlaps records when each worker's reader of each shard ran.
type overlaps struct {
	mu   sync.Mutex
	runs map[string][]run // shard -> runs
}

type run struct {
	worker     string
	start, end time.Time // end zero: still running
}

func newOverlaps() *overlaps { return &overlaps{runs: map[string][]run{}} }

func (o *overlaps) start(worker, shard string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.runs[shard] = append(o.runs[shard], run{worker: worker, start: time.Now()})
}

func (o *overlaps) end(worker, shard string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs := o.runs[shard]
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].worker == worker && rs[i].end.IsZero() {
			rs[i].end = time.Now()
			return
		}
	}
}

// max returns the longest time two workers read one shard at once.
func (o *overlaps) max(now time.Time) (time.Duration, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var worst time.Duration
	var where string
	for shard, rs := range o.runs {
		for i := range rs {
			for j := i + 1; j < len(rs); j++ {
				if rs[i].worker == rs[j].worker {
					continue
				}
				endI, endJ := rs[i].end, rs[j].end
				if endI.IsZero() {
					endI = now
				}
				if endJ.IsZero() {
					endJ = now
				}
				from := rs[i].start
				if rs[j].start.After(from) {
					from = rs[j].start
				}
				to := endI
				if endJ.Before(to) {
					to = endJ
				}
				if d := to.Sub(from); d > worst {
					worst, where = d, shard
				}
			}
		}
	}
	return worst, where
}
