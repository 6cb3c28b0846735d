//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wallarm/apigw-connector/pkg/telemetry"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/wallarm/apigw-connector/internal/emulator"
	"github.com/wallarm/apigw-connector/internal/leastnode"
	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// System benchmarks of the Kinesis source: one real `apigw-connector run` process draining a
// pre-filled stream on kinesis-mock (leases in dynalite), and the failover of two processes after
// a kill -9. scripts/bench-drain.sh runs them and prints the figures.
//
// Knobs (environment): DRAIN_CALLS (calls pre-filled per drain, default 150000; 5000 with
// -short), DRAIN_FAILOVER_TIME (kinesis.failover_time of the failover benchmark, default 10s;
// 3s with -short),
// DRAIN_PERF (a folder: `perf record` the worker during each drain into it), DRAIN_SYSCALLS
// (any value: `perf stat` the worker's system calls and context switches per call, and list
// its threads' CPU; the tracepoints make each system call dearer, so CPU figures of such runs
// do not compare with others), DRAIN_GOMAXPROCS (the worker's GOMAXPROCS, default 1).
//
// Sinks: devnode; noop (Go's net/http answering 200); wire (the least HTTP/1.1 server,
// internal/leastnode). The wire runs are "loaded": the sink answers nothing until the worker has read the
// whole stream, and the worker's CPU counts from then on (drainOnce says why).
//
// The worker is a non-race build (buildBinary's is race-enabled, which would multiply its CPU
// cost), started under `taskset -c 0` when the kernel allows it and with GOMAXPROCS=1.
// Its CPU time (rusage) and peak RSS (VmHWM) are that one process's, so the emulator
// (a node process) and this test process are not counted; they share the machine's cores with the
// worker, though, and cap the wall-clock rate.

const (
	benchRequestIDHeader    = leastnode.RequestIDHeader
	benchResponseCodeHeader = leastnode.ResponseCodeHeader
	// mib: Kinesis's read limit is 2 MB/s per shard; counted in MiB, the stricter reading.
	mib = 1 << 20
	// readLimitPerShard is that limit; 4 shards make the 8 MiB/s target.
	readLimitPerShard = 2.0 // MiB/s
)

// buildBenchBinary builds the connector as `make build` does (no race detector) into the
// benchmark's temporary folder; the build cache makes the second build quick.
func buildBenchBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "apigw-connector")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchEnvDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// callSink receives the connector's messages: it answers 200 itself (noop) or passes them to
// a devnode, and records when each call's response message (the second of its pair) arrived.
type callSink struct {
	url  string
	dn   *devnode.Server // nil for the noop sink
	mu   sync.Mutex
	seen map[string]time.Time // request id -> first arrival of its response message
	// first and last arrival of a new call (the drain window)
	first, last time.Time
	distinct    atomic.Int64
	gate        chan struct{} // wire sink: closed when it may answer; nil: at once
	// after logAll is set, every response message is logged too (re-deliveries included)
	logAll atomic.Bool
	log    []sinkArrival
}

type sinkArrival struct {
	id string
	at time.Time
}

// startCallSink starts the sink of kind (devnode, noop or wire). gate (wire only,
// may be nil) holds the wire sink's replies until it is closed.
func startCallSink(b *testing.B, kind string, gate chan struct{}) *callSink {
	b.Helper()
	s := &callSink{seen: make(map[string]time.Time, 1<<16), gate: gate}
	if kind == "wire" {
		ln, err := leastnode.Start("127.0.0.1:0", leastnode.Options{Gate: gate, OnResponse: func(id string) {
			s.record(logRequestID(id), time.Now())
		}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(ln.Close)
		s.url = ln.URL()
		return s
	}
	var next http.Handler
	if kind == "devnode" {
		s.dn = devnode.New(devnode.DefaultOptions(), nil, quietLog())
		next = s.dn.Handler()
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(benchRequestIDHeader); id != "" && r.Header.Get(benchResponseCodeHeader) != "" {
			s.record(logRequestID(id), time.Now())
		}
		if next != nil {
			next.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(h) // 127.0.0.1
	b.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// logRequestID maps a node id on the wire ("<log request id>-<hash>") to the log
// request id the producer knows its calls by.
func logRequestID(id string) string {
	if logID := devnode.LogRequestID(id); logID != "" {
		return logID
	}
	return id
}

func (s *callSink) record(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logAll.Load() {
		s.log = append(s.log, sinkArrival{id, at})
	}
	if _, ok := s.seen[id]; ok {
		return
	}
	s.seen[id] = at
	if s.first.IsZero() {
		s.first = at
	}
	s.last = at
	s.distinct.Add(1)
}

// missing counts the ids not received yet.
func (s *callSink) missing(ids []string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := s.seen[devnode.AsNodeIDPrefix(id)]; !ok { // as record keeps it
			n++
		}
	}
	return n
}

func (s *callSink) window() (first, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, s.last
}

func (s *callSink) arrivalsSince(i int) ([]sinkArrival, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkArrival(nil), s.log[i:]...), len(s.log)
}

// benchProducer writes generated CloudWatch Logs records with PutRecords and remembers the shard
// every call went to.
type benchProducer struct {
	kc     *kinesis.Client
	stream string
	g      *traffic.Generator

	mu      sync.Mutex
	ids     []string
	shardOf map[string]string // request id -> shard id
	bytes   int64             // compressed record bytes put
	nrecs   int               // records put
}

func newBenchProducer(kc *kinesis.Client, stream string, seed int64) *benchProducer {
	o := traffic.DefaultOptions()
	o.Seed, o.APIs, o.EndpointsPerAPI = seed, 6, 10
	return &benchProducer{kc: kc, stream: stream, g: traffic.New(o), shardOf: map[string]string{}}
}

// put generates n records of minEv..maxEv events and puts them (batches within PutRecords'
// limits of 500 records and 5 MiB), resending entries the emulator reports as failed.
func (p *benchProducer) put(ctx context.Context, n, minEv, maxEv int) error {
	recs := p.g.Records(n, minEv, maxEv)
	for len(recs) > 0 {
		k, size := 0, 0
		for k < len(recs) && k < 500 && size+len(recs[k].Data)+32 <= 5<<20 {
			size += len(recs[k].Data) + 32
			k++
		}
		if err := p.putBatch(ctx, recs[:k]); err != nil {
			return err
		}
		recs = recs[k:]
	}
	return nil
}

func (p *benchProducer) putBatch(ctx context.Context, recs []traffic.Record) error {
	for attempt := 0; len(recs) > 0; attempt++ {
		if attempt == 20 {
			return fmt.Errorf("put records to %s: %d entries still failing", p.stream, len(recs))
		}
		entries := make([]ktypes.PutRecordsRequestEntry, len(recs))
		for i, r := range recs {
			var key [16]byte
			_, _ = rand.Read(key[:]) // random partition keys spread records over every shard
			entries[i] = ktypes.PutRecordsRequestEntry{Data: r.Data, PartitionKey: aws.String(hex.EncodeToString(key[:]))}
		}
		out, err := p.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: entries})
		if err != nil {
			return fmt.Errorf("put records to %s: %w", p.stream, err)
		}
		var failed []traffic.Record
		p.mu.Lock()
		for i, res := range out.Records {
			if res.ErrorCode != nil {
				failed = append(failed, recs[i])
				continue
			}
			shard := aws.ToString(res.ShardId)
			p.bytes += int64(len(recs[i].Data))
			p.nrecs++
			for _, c := range recs[i].Calls {
				p.ids = append(p.ids, c.RequestID)
				p.shardOf[c.RequestID] = shard
			}
		}
		p.mu.Unlock()
		recs = failed
		if len(failed) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func (p *benchProducer) records() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nrecs
}

func (p *benchProducer) snapshot() (ids []string, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...), p.bytes
}

func (p *benchProducer) shard(id string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.shardOf[id]
	return s, ok
}

// benchWorker is one `apigw-connector run` process.
type benchWorker struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

var (
	tasksetOnce sync.Once
	tasksetOK   bool
)

// canPin reports whether `taskset -c 0` works here (containers may forbid sched_setaffinity).
func canPin() bool {
	tasksetOnce.Do(func() {
		if _, err := exec.LookPath("taskset"); err == nil {
			tasksetOK = exec.Command("taskset", "-c", "0", "true").Run() == nil
		}
	})
	return tasksetOK
}

func startBenchWorker(b *testing.B, bin, cfg string, env []string, pin bool, metricsAddr string) *benchWorker {
	b.Helper()
	if metricsAddr == "" {
		metricsAddr = "off"
	}
	args := []string{"run", "--config", cfg, "--metrics-addr", metricsAddr, "--log-format", "text"}
	var cmd *exec.Cmd
	if pin && canPin() {
		// taskset execs the worker: same pid, so its rusage is the worker's.
		cmd = exec.Command("taskset", append([]string{"-c", "0", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = append(append(os.Environ(), env...), "GOMAXPROCS="+strconv.Itoa(benchEnvInt("DRAIN_GOMAXPROCS", 1)))
	logf, err := os.CreateTemp(b.TempDir(), "worker-*.log")
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf // a file: no copier goroutines
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.Fatalf("start worker: %v", err)
	}
	w := &benchWorker{cmd: cmd, logPath: logf.Name(), done: make(chan struct{})}
	go func() {
		w.waitErr = cmd.Wait()
		logf.Close()
		close(w.done)
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
		if b.Failed() {
			out, _ := os.ReadFile(w.logPath)
			b.Logf("worker %d log (tail):\n%s", cmd.Process.Pid, tailLines(string(out), 30))
		}
	})
	return w
}

// stop sends SIGTERM and waits (killing after limit); it returns the exit error.
func (w *benchWorker) stop(limit time.Duration) error {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(limit):
		_ = w.cmd.Process.Kill()
		<-w.done
		return fmt.Errorf("worker did not exit within %s of SIGTERM", limit)
	}
	return w.waitErr
}

// cpuTime returns the worker's CPU time (user+system), after it exited.
func (w *benchWorker) cpuTime() time.Duration {
	return w.cmd.ProcessState.UserTime() + w.cmd.ProcessState.SystemTime()
}

// threads is each of the worker's OS threads: its CPU and its context switches,
// busiest first. Which thread pays tells what pays (sysmon runs on a thread of
// its own, without a P).
func (w *benchWorker) threads() string {
	dir := fmt.Sprintf("/proc/%d/task", w.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	type th struct {
		tid         string
		ms          int64
		vol, nonvol int64
	}
	var ts []th
	for _, e := range ents {
		stat, err1 := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		status, err2 := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err1 != nil || err2 != nil {
			continue
		}
		t := th{tid: e.Name(), ms: statCPU(stat).Milliseconds()}
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				t.vol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			} else if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				t.nonvol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b th) int { return int(b.ms - a.ms) })
	var sb strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&sb, "[%s %dms %d/%d] ", t.tid, t.ms, t.vol, t.nonvol)
	}
	return sb.String()
}

// cpuSoFar is the running worker's CPU (user+sys) from /proc (clock ticks).
func (w *benchWorker) cpuSoFar() time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	return statCPU(stat)
}

// statCPU is the user+sys time in a /proc/<pid>[/task/<tid>]/stat line.
func statCPU(stat []byte) time.Duration {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:])) // f[11], f[12]: utime, stime in clock ticks
	if len(f) <= 12 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// scrapeSum is the sum of every series of one metric on the worker's /metrics
// (0 until the listener is up).
func scrapeSum(b *testing.B, addr, name string) float64 {
	b.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0
	}
	return telemetry.Snapshot{mfs[name]}.Sum(name, "", "")
}

// peakRSS reads the worker's resident-set high-water mark (VmHWM) while it runs. Not rusage's
// ru_maxrss: Go starts children with vfork semantics, and Linux carries the parent's (this test
// process's) peak RSS into the child's ru_maxrss at exec.
func (w *benchWorker) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read worker status: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// perfRecord samples the worker with `perf record` into dir when dir is set (DRAIN_PERF); the
// returned stop ends the recording.
func perfRecord(b *testing.B, w *benchWorker, dir, name string) (stop func()) {
	b.Helper()
	if dir == "" {
		return func() {}
	}
	out := filepath.Join(dir, name+".perf.data")
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-o", out, "-p", strconv.Itoa(w.cmd.Process.Pid))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Logf("perf record: %v (profile skipped)", err)
		return func() {}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			b.Logf("worker profile: %s (perf report -i %s --no-children)", out, out)
		})
	}
	b.Cleanup(stop)
	return stop
}

// perfCountEvents are the worker's system calls and context switches that
// DRAIN_SYSCALLS counts, reported per call: where a call's kernel time goes.
var perfCountEvents = []string{"raw_syscalls:sys_enter", "syscalls:sys_enter_write", "syscalls:sys_enter_read",
	"syscalls:sys_enter_epoll_pwait", "syscalls:sys_enter_futex", "syscalls:sys_enter_nanosleep", "context-switches"}

// perfCount counts perfCountEvents for the worker with `perf stat` when on; the
// returned stop ends counting and returns the totals (none when off or refused).
func perfCount(b *testing.B, w *benchWorker, on bool) (stop func() map[string]int64) {
	b.Helper()
	if !on {
		return func() map[string]int64 { return nil }
	}
	out := filepath.Join(b.TempDir(), "perf-stat.csv")
	cmd := exec.Command("perf", "stat", "-x", ",", "-o", out, "-e", strings.Join(perfCountEvents, ","), "-p", strconv.Itoa(w.cmd.Process.Pid))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Logf("perf stat: %v (counts skipped)", err)
		return func() map[string]int64 { return nil }
	}
	return func() map[string]int64 {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		data, err := os.ReadFile(out)
		if err != nil {
			b.Logf("perf stat: %v", err)
			return nil
		}
		counts := map[string]int64{}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ",")
			if len(f) >= 3 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					counts[f[2]] = n
				}
			}
		}
		return counts
	}
}

func writeBenchConfig(b *testing.B, nodeURL, replyTimeout, kinesisYAML string) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "connector.yaml")
	body := fmt.Sprintf("source:\n  type: kinesis\nnode:\n  url: %s\n  reply_timeout: %s\n  retry:\n    initial_backoff: 20ms\n    max_backoff: 300ms\nlog:\n  level: warn\nkinesis:\n%s", nodeURL, replyTimeout, kinesisYAML)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

var benchSeq atomic.Int64

func benchName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), benchSeq.Add(1))
}

// BenchmarkDrain measures one worker draining a pre-filled stream: calls/s, compressed MiB/s,
// the worker's CPU seconds per million calls and compressed MiB per CPU second (the figure to
// hold against the 8 MiB/s read limit of 4 shards on one core), and its peak RSS.
func BenchmarkDrain(b *testing.B) {
	bin := buildBenchBinary(b)
	kep := testenv.StartKinesisMock(b)
	dep := testenv.StartDynalite(b)
	kc := testenv.KinesisClient(b, kep)
	calls := benchEnvInt("DRAIN_CALLS", 150000)
	if testing.Short() {
		calls = 5000
	}
	for _, c := range []struct {
		shards int
		sink   string
		loaded bool
	}{{4, "devnode", false}, {4, "noop", false}, {16, "noop", false}, {4, "wire", true}, {16, "wire", true}} {
		name := fmt.Sprintf("shards=%d/sink=%s", c.shards, c.sink)
		if c.loaded {
			name += "/loaded"
		}
		b.Run(name, func(b *testing.B) {
			var tot drainResult
			for range b.N {
				r := drainOnce(b, bin, kep, dep, kc, c.shards, c.sink, calls, c.loaded)
				tot.calls += r.calls
				tot.bytes += r.bytes
				tot.window += r.window
				tot.cpu += r.cpu
				tot.maxRSS = max(tot.maxRSS, r.maxRSS)
				tot.startup += r.startup
			}
			secs := tot.window.Seconds()
			mb := float64(tot.bytes) / mib
			b.ReportMetric(0, "ns/op") // an op is a whole drain; the rates below are the figures
			b.ReportMetric(float64(tot.calls)/secs, "calls/s")
			b.ReportMetric(mb/secs, "MiB/s")
			b.ReportMetric(tot.cpu.Seconds()/(float64(tot.calls)/1e6), "cpu-s/Mcalls")
			b.ReportMetric(mb/tot.cpu.Seconds(), "MiB/cpu-s")
			b.ReportMetric(mb/tot.cpu.Seconds()/(readLimitPerShard*4), "x8MiB/s-per-core")
			b.ReportMetric(float64(tot.maxRSS)/mib, "peak-RSS-MiB")
			b.ReportMetric(tot.startup.Seconds()/float64(b.N), "startup-s")
			b.Logf("taskset -c 0: %v, GOMAXPROCS=%d: %d calls, %.1f MiB compressed, drained in %s (first to last call), worker CPU %s, peak RSS %.1f MiB",
				canPin(), benchEnvInt("DRAIN_GOMAXPROCS", 1), tot.calls, mb, tot.window.Round(time.Millisecond), tot.cpu.Round(time.Millisecond), float64(tot.maxRSS)/mib)
		})
	}
}

type drainResult struct {
	calls   int
	bytes   int64
	window  time.Duration // first to last call at the sink
	startup time.Duration // process start to first call at the sink
	cpu     time.Duration
	maxRSS  int64
}

// drainOnce drains a pre-filled stream with one worker. loaded holds the sink's
// replies until the worker has read the whole stream, and counts the worker's CPU
// from then on: kinesis-mock serves GetRecords at about 1.3 MB/s (3-4 ms per
// 4 KB record), so an ungated worker spends most of a drain waiting for it and
// pays a wake-up for every few calls, which a task with a backlog (real Kinesis
// returns up to 10 MB per call) does not.
func drainOnce(b *testing.B, bin, kep, dep string, kc *kinesis.Client, shards int, sinkKind string, calls int, loaded bool) drainResult {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stream, app := benchName("drain"), benchName("drain-app")
	testenv.CreateStream(b, kc, stream, int32(shards))
	p := newBenchProducer(kc, stream, int64(shards)*1000+benchSeq.Load())
	fillStart := time.Now()
	for perRec := 40; len(p.ids) < calls; { // 20-60 events per record, 40 on average
		if err := p.put(ctx, max(1, min(1000, (calls-len(p.ids))/perRec)), 20, 60); err != nil {
			b.Fatal(err)
		}
	}
	ids, bytes := p.snapshot()
	b.Logf("filled %d shards with %d calls (%.1f MiB compressed) in %s", shards, len(ids), float64(bytes)/mib, time.Since(fillStart).Round(time.Millisecond))

	var gate chan struct{}
	if loaded {
		gate = make(chan struct{})
	}
	sink := startCallSink(b, sinkKind, gate)
	var metricsAddr string
	replyTimeout := "2s"
	if loaded {
		ports, err := emulator.FreePorts(1)
		if err != nil {
			b.Fatal(err)
		}
		metricsAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
		replyTimeout = "5m" // the gate holds the first messages until the stream is read
	}
	cfg := writeBenchConfig(b, sink.url, replyTimeout, fmt.Sprintf(
		"  stream: %s\n  application_name: %s\n  poll_interval: 200ms\n  checkpoint_interval: 1s\n  shutdown_grace: 10s\n", stream, app))
	b.StartTimer()
	started := time.Now()
	w := startBenchWorker(b, bin, cfg, testenv.AWSEnv(kep, dep), true, metricsAddr)
	var cpuAtGate time.Duration
	if loaded {
		records := p.records()
		for read := 0; read < records; {
			select {
			case <-w.done:
				b.Fatalf("worker exited before reading the stream (%v)", w.waitErr)
			case <-ctx.Done():
				b.Fatalf("the worker read %d of %d records before the deadline", read, records)
			case <-time.After(100 * time.Millisecond):
			}
			read = int(scrapeSum(b, metricsAddr, "apigw_connector_kinesis_records_read_total"))
		}
		cpuAtGate = w.cpuSoFar()
		close(sink.gate)
	}
	stopCount := perfCount(b, w, os.Getenv("DRAIN_SYSCALLS") != "")
	stopPerf := perfRecord(b, w, os.Getenv("DRAIN_PERF"), strings.NewReplacer("/", "_", "=", "").Replace(b.Name()))
	deadline := time.Now().Add(150 * time.Second)
	for sink.distinct.Load() < int64(len(ids)) {
		select {
		case <-w.done:
			b.Fatalf("worker exited while draining (%v) with %d of %d calls at the sink", w.waitErr, sink.distinct.Load(), len(ids))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("drain not done in 150 s: %d of %d calls at the sink", sink.distinct.Load(), len(ids))
		}
	}
	b.StopTimer()
	stopPerf()
	counts := stopCount()
	threads := w.threads()
	rss, err := w.peakRSS()
	if err != nil {
		b.Fatal(err)
	}
	if err := w.stop(30 * time.Second); err != nil {
		b.Fatalf("worker stop: %v", err)
	}
	if n := sink.missing(ids); n > 0 {
		b.Fatalf("%d of %d calls never reached the sink", n, len(ids))
	}
	if sink.dn != nil {
		if st := sink.dn.Stats(); st.Completed < int64(len(ids)) || len(st.Rejects) > 0 {
			b.Fatalf("devnode completed %d of %d calls, rejects %v", st.Completed, len(ids), st.Rejects)
		}
	}
	first, last := sink.window()
	if len(counts) > 0 {
		var sb strings.Builder
		for _, ev := range perfCountEvents {
			fmt.Fprintf(&sb, " %s %.2f", strings.TrimPrefix(ev, "syscalls:sys_enter_"), float64(counts[ev])/float64(len(ids)))
		}
		b.Logf("per call (perf stat of the worker's threads alive when it began):%s", sb.String())
		b.Logf("the worker's threads, busiest first [tid CPU voluntary/involuntary context switches]: %s", threads)
	}
	return drainResult{calls: len(ids), bytes: bytes, window: last.Sub(first), startup: first.Sub(started), cpu: w.cpuTime() - cpuAtGate, maxRSS: rss}
}

// BenchmarkFailover runs two workers on a 4-shard stream under steady production, kills the one
// holding the most leases with SIGKILL and measures the time from the kill to the first call of
// one of its shards delivered by the survivor. The target is failover_time + 5 s.
func BenchmarkFailover(b *testing.B) {
	bin := buildBenchBinary(b)
	kep := testenv.StartKinesisMock(b)
	dep := testenv.StartDynalite(b)
	kc := testenv.KinesisClient(b, kep)
	ddb := testenv.DynamoDBClient(b, dep)
	def := 10 * time.Second // the default kinesis.failover_time
	if testing.Short() {
		def = 3 * time.Second
	}
	failover := benchEnvDuration("DRAIN_FAILOVER_TIME", def)
	bound := failover + 5*time.Second
	var total time.Duration
	for range b.N {
		total += failoverOnce(b, bin, kep, dep, kc, ddb, failover)
	}
	avg := total / time.Duration(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(avg.Seconds(), "failover-s")
	b.ReportMetric(failover.Seconds(), "failover_time-s")
	b.ReportMetric(bound.Seconds(), "bound-s")
	if avg >= bound {
		b.Errorf("failover took %s, want below failover_time + 5s = %s", avg, bound)
	}
}

func failoverOnce(b *testing.B, bin, kep, dep string, kc *kinesis.Client, ddb *dynamodb.Client, failover time.Duration) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stream, app := benchName("failover"), benchName("failover-app")
	testenv.CreateStream(b, kc, stream, 4)
	p := newBenchProducer(kc, stream, 77+benchSeq.Load())
	sink := startCallSink(b, "noop", nil)
	cfg := writeBenchConfig(b, sink.url, "2s", fmt.Sprintf(
		"  stream: %s\n  application_name: %s\n  failover_time: %s\n  poll_interval: 200ms\n  checkpoint_interval: 1s\n  shutdown_grace: 10s\n",
		stream, app, failover))

	// Steady production: 4 records of 10-20 events every 100 ms (about 600 calls/s).
	prodCtx, cancelProd := context.WithCancel(ctx)
	prodDone := make(chan error, 1)
	var prodErr error
	var stopOnce sync.Once
	stopProd := func() error {
		stopOnce.Do(func() {
			cancelProd()
			prodErr = <-prodDone
		})
		return prodErr
	}
	defer stopProd()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-prodCtx.Done():
				prodDone <- nil
				return
			case <-t.C:
				if err := p.put(prodCtx, 4, 10, 20); err != nil && prodCtx.Err() == nil {
					prodDone <- err
					return
				}
			}
		}
	}()

	env := testenv.AWSEnv(kep, dep)
	workers := map[string]*benchWorker{}
	for _, id := range []string{"worker-a", "worker-b"} {
		workers[id] = startBenchWorker(b, bin, cfg, append(env, "APIGW_CONNECTOR_KINESIS_WORKER_ID="+id), false, "")
	}

	// Wait for the leases to spread 2/2 (or at least both holding some), then let it run steadily.
	var owners map[string][]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		owners = leaseOwners(ctx, ddb, app)
		a, bb := len(owners["worker-a"]), len(owners["worker-b"])
		if a+bb == 4 && (a == 2 || time.Now().After(deadline) && a > 0 && bb > 0) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("leases not spread over both workers in 60 s: %v", owners)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	owners = leaseOwners(ctx, ddb, app)
	victim := "worker-a"
	if len(owners["worker-b"]) > len(owners["worker-a"]) {
		victim = "worker-b"
	}
	victimShards := map[string]bool{}
	for _, s := range owners[victim] {
		victimShards[s] = true
	}
	if len(victimShards) == 0 {
		b.Fatalf("no leases held: %v", owners)
	}

	sink.logAll.Store(true)
	killed := time.Now()
	if err := workers[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.Fatalf("kill -9 %s: %v", victim, err)
	}
	<-workers[victim].done
	// Messages the victim sent before it died arrived before killed: anything later is the survivor's.
	var took time.Duration
	seen := 0
	limit := time.Now().Add(failover + 30*time.Second)
	for took == 0 {
		var arr []sinkArrival
		arr, seen = sink.arrivalsSince(seen)
		for _, a := range arr {
			if s, ok := p.shard(a.id); ok && victimShards[s] && a.at.After(killed) {
				took = a.at.Sub(killed)
				break
			}
		}
		if took == 0 && time.Now().After(limit) {
			b.Fatalf("no call of the killed worker's shards %v delivered within %s of the kill", owners[victim], failover+30*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Nothing lost: stop producing and wait for every call.
	if err := stopProd(); err != nil {
		b.Fatal(err)
	}
	ids, _ := p.snapshot()
	deadline = time.Now().Add(30 * time.Second)
	for sink.missing(ids) > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d calls never reached the sink after the failover", sink.missing(ids), len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id, w := range workers {
		if id != victim {
			if err := w.stop(30 * time.Second); err != nil {
				b.Fatalf("%s stop: %v", id, err)
			}
		}
	}
	b.Logf("killed %s holding %v; survivor delivered from them %s after the kill; %d calls, none lost",
		victim, owners[victim], took.Round(time.Millisecond), len(ids))
	return took
}

// leaseOwners scans the lease table (named after the application, KCL schema): owner -> shard ids.
func leaseOwners(ctx context.Context, ddb *dynamodb.Client, table string) map[string][]string {
	out := map[string][]string{}
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	for {
		page, err := ddb.Scan(ctx, in)
		if err != nil { // no table yet, or a failed scan: what was read so far
			return out
		}
		for _, it := range page.Items {
			key, _ := it["leaseKey"].(*dtypes.AttributeValueMemberS)
			owner, _ := it["leaseOwner"].(*dtypes.AttributeValueMemberS)
			if key != nil && owner != nil {
				out[owner.Value] = append(out[owner.Value], key.Value)
			}
		}
		if page.LastEvaluatedKey == nil {
			return out
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}
