// Package demo runs the one-command local demo of the connector: AWS
// emulators, a 4-shard stream, the devnode stand-in for the Wallarm node, two
// connector workers sharing the stream through the lease table, and
// realistic API Gateway traffic from `apigw-connector generate`. It shows
// progress, the API inventory the node discovered, lag and throughput, and
// checks that every generated call was delivered.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/wallarm/apigw-connector/internal/emulator"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// Sentinel errors of a demo that ran to the end but found a problem.
var (
	ErrCallsLost         = errors.New("calls lost")
	ErrInventoryMismatch = errors.New("inventory does not match the generated endpoints")
)

// Dummy AWS settings the emulators accept.
const (
	awsRegion    = "us-east-1"
	awsAccessKey = "AKIDDEMODEMODEMODEMO"
	awsSecret    = "demo-secret"
	streamName   = "apigw-demo"
	appName      = "apigw-demo"
)

// Options configure a demo run.
type Options struct {
	// RepoRoot holds go.mod and scripts/install-emulators.sh; empty: found
	// from the working directory upwards.
	RepoRoot string
	// Duration bounds the generated traffic.
	Duration time.Duration
	// Rate is the generated calls per second.
	Rate float64
	// APIs and EndpointsPerAPI shape the generated inventory.
	APIs            int
	EndpointsPerAPI int
	ErrorShare      float64
	// Seed of the generator; 0 picks one at random.
	Seed int64
	// Shards of the stream and Workers reading it.
	Shards  int
	Workers int
	// DrainTimeout bounds the wait for the last calls after the traffic ended.
	DrainTimeout time.Duration
	// ProgressInterval is how often a progress line is printed.
	ProgressInterval time.Duration
	// ConnectorBinary is a built apigw-connector; empty: built with `go build`.
	ConnectorBinary string
	// WorkDir holds logs, the manifest and the built binary; empty: a
	// temporary folder, removed after a successful run.
	WorkDir string
	// SkipInstall skips scripts/install-emulators.sh (the emulators are installed).
	SkipInstall bool
	// Out receives progress and the report; nil: os.Stdout.
	Out io.Writer
	// StopNow, when closed, makes the shutdown kill children at once instead
	// of letting the workers drain (a second Ctrl-C).
	StopNow <-chan struct{}
	// OnProcess is called with every child process started (tests check that
	// none survives).
	OnProcess func(name string, pid int)
}

// DefaultOptions returns a 30-second demo at 200 calls/s.
func DefaultOptions() Options {
	return Options{
		Duration: 30 * time.Second, Rate: 200, APIs: 4, EndpointsPerAPI: 8, ErrorShare: 0.05,
		Shards: 4, Workers: 2, DrainTimeout: 90 * time.Second, ProgressInterval: 3 * time.Second,
	}
}

// Validate checks the options.
func (o Options) Validate() error {
	var errs []error
	if o.Duration <= 0 || o.Duration > 24*time.Hour {
		errs = append(errs, fmt.Errorf("duration must be between 1s and 24h, got %s", o.Duration))
	}
	if o.Rate <= 0 || o.Rate > 100000 {
		errs = append(errs, fmt.Errorf("rate must be between 1 and 100000 calls/s, got %v", o.Rate))
	}
	if o.APIs < 1 || o.EndpointsPerAPI < 1 {
		errs = append(errs, fmt.Errorf("apis and endpoints must be at least 1, got %d and %d", o.APIs, o.EndpointsPerAPI))
	}
	if o.ErrorShare < 0 || o.ErrorShare > 1 {
		errs = append(errs, fmt.Errorf("error share must be between 0 and 1, got %v", o.ErrorShare))
	}
	if o.Shards < 1 || o.Shards > 64 {
		errs = append(errs, fmt.Errorf("shards must be between 1 and 64, got %d", o.Shards))
	}
	if o.Workers < 1 || o.Workers > 16 {
		errs = append(errs, fmt.Errorf("workers must be between 1 and 16, got %d", o.Workers))
	}
	if o.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("drain timeout must be positive, got %s", o.DrainTimeout))
	}
	if o.ProgressInterval <= 0 {
		errs = append(errs, fmt.Errorf("progress interval must be positive, got %s", o.ProgressInterval))
	}
	return errors.Join(errs...)
}

// WorkerResult is one worker's share at the end of the run.
type WorkerResult struct {
	ID     string
	Leases int
	// Delivered counts the deliveries the node accepted or already held
	// (AlreadyHeld of them: redeliveries after lease moves).
	Delivered   int64
	AlreadyHeld int64
	Rejected    int64 // refused for good
}

// Result is what a demo run measured.
type Result struct {
	Generated  int64 // calls written to the stream
	Delivered  int64 // of those, completed at devnode (request and response message)
	Missing    int64
	Duplicates int64 // redeliveries of generated calls (devnode refused them as duplicates)
	// Endpoints is the number of generated endpoints that were called;
	// Discovered how many of them the inventory holds.
	Endpoints        int
	Discovered       int
	MissingEndpoints []string
	Unexpected       []string // inventory rows matching no generated endpoint
	InventoryCalls   int64    // sum of the inventory's call counts
	GenerateRate     float64  // calls/s written
	DeliveryRate     float64  // calls/s from the traffic's start until the last one was delivered
	DrainTime        time.Duration
	MaxLag, EndLag   time.Duration // millis_behind_latest, worst over the run and at the end
	// Latency from a call's access-log time to its arrival at the node.
	LatencyP50, LatencyP99, LatencyMax time.Duration
	Workers                            []WorkerResult
	WorkDir                            string
}

// tiers order the shutdown: the traffic first, then the workers (they
// release their leases in DynamoDB), then the emulators, then the tools.
const (
	tierTool = iota
	tierEmulator
	tierWorker
	tierTraffic
)

type run struct {
	o   Options
	out io.Writer
	dir string
	bin string

	mu    sync.Mutex
	procs []*proc
	tiers map[*proc]int
	grace map[*proc]time.Duration

	http    *http.Client
	tr      *http.Transport
	started time.Time
	// trafficStarted is when generate started: the progress clock counts
	// from it, not from the emulators' installation and the build.
	trafficStarted time.Time
	// afterWorkers runs in the shutdown once the workers are stopped (devnode).
	afterWorkers func()
}

// Run runs the demo until the traffic is delivered (or DrainTimeout), or
// ctx ends; it stops every process it started before returning. It returns
// ErrCallsLost or ErrInventoryMismatch (wrapped) when the check fails.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("check demo options: %w", err)
	}
	if o.RepoRoot == "" {
		if o.RepoRoot, err = findRepoRoot(); err != nil {
			return nil, err
		}
	}
	d := &run{o: o, out: o.Out, tiers: map[*proc]int{}, grace: map[*proc]time.Duration{}, started: time.Now()}
	if d.out == nil {
		d.out = os.Stdout
	}
	d.tr = &http.Transport{MaxIdleConnsPerHost: 4}
	d.http = &http.Client{Transport: d.tr, Timeout: 5 * time.Second}
	keep := o.WorkDir != ""
	if o.WorkDir == "" {
		if d.dir, err = os.MkdirTemp("", "apigw-demo-*"); err != nil {
			return nil, fmt.Errorf("create work folder: %w", err)
		}
	} else {
		d.dir = o.WorkDir
		if err := os.MkdirAll(d.dir, 0o755); err != nil {
			return nil, fmt.Errorf("create work folder: %w", err)
		}
	}
	defer func() {
		d.shutdown()
		d.tr.CloseIdleConnections()
		// Kept when asked for or when something failed; an interrupted run
		// leaves no litter.
		if !keep && (err == nil || ctx.Err() != nil) {
			_ = os.RemoveAll(d.dir)
		} else {
			d.say("logs, manifest and inventory kept in %s", d.dir)
		}
	}()
	res, err = d.main(ctx)
	if res != nil {
		res.WorkDir = d.dir
	}
	if err != nil && ctx.Err() != nil {
		d.say("interrupted: stopping everything")
		return res, ctx.Err()
	}
	return res, err
}

func (d *run) main(ctx context.Context) (*Result, error) {
	o := d.o
	d.say("%d APIs x %d endpoints, %.0f calls/s for %s, %d shards, %d workers (work folder %s)",
		o.APIs, o.EndpointsPerAPI, o.Rate, o.Duration, o.Shards, o.Workers, d.dir)
	if !o.SkipInstall {
		d.say("installing the AWS emulators (npm, cached in %s)", emulator.Dir(o.RepoRoot))
		if err := d.installEmulators(ctx); err != nil {
			return nil, err
		}
	}

	// The emulators start while the connector builds.
	var kinesisEP, dynamoEP string
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); kinesisEP, errs[0] = d.startEmulator(ctx, "kinesis-mock") }()
	go func() { defer wg.Done(); dynamoEP, errs[1] = d.startEmulator(ctx, "dynalite") }()
	go func() { defer wg.Done(); errs[2] = d.buildConnector(ctx) }()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d.say("kinesis-mock on %s, dynalite on %s", kinesisEP, dynamoEP)

	if err := d.createStream(ctx, kinesisEP); err != nil {
		return nil, err
	}
	d.say("stream %s created with %d shards", streamName, o.Shards)

	node, nodeURL, stopNode, err := d.startDevnode(ctx)
	if err != nil {
		return nil, err
	}
	// After the workers: they may still be sending while they drain.
	d.afterWorkers = stopNode
	d.say("devnode (node stand-in) on %s", nodeURL)

	workers, err := d.startWorkers(ctx, kinesisEP, dynamoEP, nodeURL)
	if err != nil {
		return nil, err
	}
	return d.traffic(ctx, kinesisEP, nodeURL, node, workers)
}

// worker is one connector worker process.
type worker struct {
	id      string
	metrics string // base URL of its telemetry listener
	p       *proc
}

func (d *run) awsEnv(kinesisEP, dynamoEP string) []string {
	var env []string
	for _, kv := range os.Environ() {
		// The user's AWS profile or connector settings must not redirect the demo.
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "APIGW_CONNECTOR_") || strings.HasPrefix(kv, "X_NODE_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AWS_REGION="+awsRegion, "AWS_ACCESS_KEY_ID="+awsAccessKey, "AWS_SECRET_ACCESS_KEY="+awsSecret,
		"AWS_EC2_METADATA_DISABLED=true")
	if kinesisEP != "" {
		env = append(env, "AWS_ENDPOINT_URL_KINESIS="+kinesisEP)
	}
	if dynamoEP != "" {
		env = append(env, "AWS_ENDPOINT_URL_DYNAMODB="+dynamoEP)
	}
	return env
}

// buildArgs builds the connector the way `make build` stamps it, so the
// workers log (and send the node) the checkout's version instead of "dev".
func buildArgs(ctx context.Context, repo, out string) []string {
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repo
		b, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	version, commit := git("describe", "--tags", "--always", "--dirty"), git("rev-parse", "--short=12", "HEAD")
	if version == "" {
		version = "dev"
	}
	if commit == "" {
		commit = "unknown"
	}
	return []string{"build", "-ldflags", "-X main.version=" + version + " -X main.commit=" + commit, "-o", out, "./cmd/apigw-connector"}
}

func (d *run) buildConnector(ctx context.Context) error {
	if d.o.ConnectorBinary != "" {
		d.bin = d.o.ConnectorBinary
		return nil
	}
	d.bin = filepath.Join(d.dir, "apigw-connector")
	start := time.Now()
	cmd := exec.Command("go", buildArgs(ctx, d.o.RepoRoot, d.bin)...)
	cmd.Dir = d.o.RepoRoot
	p, err := d.start(ctx, "go-build", cmd)
	if err != nil {
		return err
	}
	if err := d.waitProc(ctx, p); err != nil {
		return fmt.Errorf("build the connector (go %s): %w\n%s", strings.Join(cmd.Args[1:], " "), err, p.logTail(4000))
	}
	d.say("connector built in %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (d *run) createStream(ctx context.Context, endpoint string) error {
	// A bare config: nothing from the user's AWS environment applies to the emulator.
	cfg := aws.Config{
		Region:      awsRegion,
		Credentials: credentials.NewStaticCredentialsProvider(awsAccessKey, awsSecret, ""),
		HTTPClient:  d.http,
	}
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := kc.CreateStream(cctx, &kinesis.CreateStreamInput{StreamName: aws.String(streamName), ShardCount: aws.Int32(int32(d.o.Shards))}); err != nil {
		return fmt.Errorf("create stream %s: %w", streamName, err)
	}
	for {
		out, err := kc.DescribeStreamSummary(cctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(streamName)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return nil
		}
		select {
		case <-cctx.Done():
			return fmt.Errorf("stream %s not ACTIVE: %w (last error: %v)", streamName, cctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startDevnode runs the node stand-in in the demo's own process: the demo
// needs the delivered request ids, which devnode offers in process only.
func (d *run) startDevnode(ctx context.Context) (*devnode.Server, string, func(), error) {
	f, err := os.Create(filepath.Join(d.dir, "devnode.log"))
	if err != nil {
		return nil, "", nil, fmt.Errorf("create devnode log: %w", err)
	}
	log := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := devnode.New(devnode.DefaultOptions(), nil, log)
	addr, err := s.Start(ctx, "127.0.0.1:0")
	if err != nil {
		f.Close()
		return nil, "", nil, fmt.Errorf("start devnode: %w", err)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
		f.Close()
	}
	return s, "http://" + addr.String(), stop, nil
}

func (d *run) startWorkers(ctx context.Context, kinesisEP, dynamoEP, nodeURL string) ([]*worker, error) {
	ports, err := emulator.FreePorts(d.o.Workers)
	if err != nil {
		return nil, fmt.Errorf("pick metrics ports: %w", err)
	}
	var workers []*worker
	for i := range d.o.Workers {
		id := fmt.Sprintf("worker-%d", i+1)
		addr := "127.0.0.1:" + strconv.Itoa(ports[i])
		cmd := exec.Command(d.bin, "run")
		cmd.Env = append(d.awsEnv(kinesisEP, dynamoEP),
			"APIGW_CONNECTOR_SOURCE_TYPE=kinesis",
			"APIGW_CONNECTOR_KINESIS_STREAM="+streamName,
			"APIGW_CONNECTOR_KINESIS_APPLICATION_NAME="+appName,
			"APIGW_CONNECTOR_KINESIS_WORKER_ID="+id,
			"APIGW_CONNECTOR_KINESIS_INITIAL_POSITION=TRIM_HORIZON",
			// A shorter failover than the default 10s, so the second worker's
			// fair share of leases shows within a short demo.
			"APIGW_CONNECTOR_KINESIS_FAILOVER_TIME=6s",
			"APIGW_CONNECTOR_KINESIS_SHUTDOWN_GRACE=10s",
			"APIGW_CONNECTOR_NODE_URL="+nodeURL,
			"APIGW_CONNECTOR_METRICS_ADDR="+addr,
			"APIGW_CONNECTOR_LOG_FORMAT=text",
		)
		p, err := d.start(ctx, id, cmd)
		if err != nil {
			return workers, err
		}
		d.setTier(p, tierWorker, 20*time.Second)
		workers = append(workers, &worker{id: id, metrics: "http://" + addr, p: p})
	}
	for _, w := range workers {
		if err := d.waitReady(ctx, w); err != nil {
			return workers, err
		}
	}
	d.say("%d connector workers ready (lease table %s in DynamoDB)", len(workers), appName)
	return workers, nil
}

// waitReady polls the worker's /readyz until it answers 200 or its source is ready.
func (d *run) waitReady(ctx context.Context, w *worker) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.metrics+"/readyz", nil)
		resp, err := d.http.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || sourceReady(body) {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 90s (last: %v)\n--- %s ---\n%s", w.id, err, w.p.logPath, w.p.logTail(4000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.p.done:
			return fmt.Errorf("%s exited with code %d before it was ready\n--- %s ---\n%s", w.id, w.p.exitCode(), w.p.logPath, w.p.logTail(4000))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sourceReady reads a /readyz body: the Kinesis source is up (holds its
// place in the lease table). The node check may still be false then: the
// connector reports the node up once it has answered, and nothing was sent yet.
func sourceReady(body []byte) bool {
	var r struct {
		Checks map[string]string `json:"checks"`
	}
	return json.Unmarshal(body, &r) == nil && r.Checks["source"] == "ok"
}

// traffic runs the generator, shows progress, waits for delivery and reports.
func (d *run) traffic(ctx context.Context, kinesisEP, nodeURL string, node *devnode.Server, workers []*worker) (*Result, error) {
	o := d.o
	mpath := filepath.Join(d.dir, "manifest.json")
	args := []string{"generate", "--stream", streamName, "--rate", strconv.FormatFloat(o.Rate, 'f', -1, 64),
		"--duration", o.Duration.String(), "--apis", strconv.Itoa(o.APIs), "--endpoints", strconv.Itoa(o.EndpointsPerAPI),
		"--error-share", strconv.FormatFloat(o.ErrorShare, 'f', -1, 64), "--events-per-record", "10-50",
		"--control-message", "--manifest", mpath, "--progress", "250ms"}
	if o.Seed != 0 {
		args = append(args, "--seed", strconv.FormatInt(o.Seed, 10))
	}
	cmd := exec.Command(d.bin, args...)
	cmd.Env = d.awsEnv(kinesisEP, "")
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	cmd.Stderr = pw
	var generated atomic.Int64
	var finalLine atomic.Value
	var genLog strings.Builder
	readDone := make(chan struct{})
	genStart := time.Now()
	d.trafficStarted = genStart
	p, err := d.start(ctx, "generate", cmd)
	pw.Close() // the child holds its own copy
	if err != nil {
		pr.Close()
		return nil, err
	}
	d.setTier(p, tierTraffic, 2*time.Second)
	go func() {
		defer close(readDone)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			genLog.WriteString(line + "\n")
			if rest, ok := strings.CutPrefix(line, "generate: progress calls="); ok {
				n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
				generated.Store(n)
			} else if strings.HasPrefix(line, "generate: ") {
				finalLine.Store(line)
			}
		}
	}()
	d.say("generating traffic: apigw-connector %s", strings.Join(args, " "))
	for _, l := range strings.Split(legend, "\n") {
		d.say("%s", l)
	}

	var maxLag float64
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	lastPrint := time.Now()
	progress := func(phase string) []workerView {
		views := d.scrapeWorkers(ctx, workers)
		for _, v := range views {
			maxLag = max(maxLag, v.lagMillis)
		}
		if time.Since(lastPrint) >= o.ProgressInterval {
			lastPrint = time.Now()
			d.printProgress(phase, generated.Load(), node, workers, views)
		}
		return views
	}
genLoop:
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.done:
			break genLoop
		case <-sample.C:
			progress("traffic")
		}
	}
	<-readDone
	genEnd := time.Now()
	if fl, _ := finalLine.Load().(string); fl != "" {
		d.say("%s", fl)
	}
	if p.exitCode() != 0 {
		return nil, fmt.Errorf("generate failed with exit code %d:\n%s", p.exitCode(), genLog.String())
	}
	m, err := readManifest(mpath)
	if err != nil {
		return nil, err
	}
	generated.Store(m.Calls)

	// Drain: wait until devnode has every generated request id.
	want := m.RequestIDs
	drainDeadline := time.Now().Add(o.DrainTimeout)
	var missing []string
	var allAt time.Time
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		missing, _ = node.CheckDelivered(want)
		if len(missing) == 0 {
			allAt = time.Now()
			break
		}
		if time.Now().After(drainDeadline) {
			d.say("gave up waiting after %s: %d calls still undelivered", o.DrainTimeout, len(missing))
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-poll.C:
		case <-sample.C:
			progress("draining")
		}
	}
	views := d.scrapeWorkers(ctx, workers)
	for _, v := range views {
		maxLag = max(maxLag, v.lagMillis)
	}
	d.printProgress("final", m.Calls, node, workers, views)
	return d.report(ctx, nodeURL, node, m, workers, views, missing, reportTimes{genStart, genEnd, allAt, maxLag})
}

type reportTimes struct {
	genStart, genEnd, allAt time.Time
	maxLagMillis            float64
}

func readManifest(path string) (*traffic.Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m traffic.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", path, err)
	}
	return &m, nil
}

func (d *run) scrapeWorkers(ctx context.Context, workers []*worker) []workerView {
	views := make([]workerView, len(workers))
	for i, w := range workers {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := scrape(sctx, d.http, w.metrics+"/metrics")
		cancel()
		if err == nil {
			views[i] = viewOf(s)
		}
	}
	return views
}

func (d *run) printProgress(phase string, generated int64, node *devnode.Server, workers []*worker, views []workerView) {
	st := node.Stats()
	f := progressFigures{elapsed: time.Since(d.trafficStarted), phase: phase, generated: generated, delivered: st.Completed, redelivered: st.Duplicates}
	for i, w := range workers {
		f.workers = append(f.workers, workerFigures{id: w.id, v: views[i]})
	}
	d.say("%s", progressLine(f))
}

func fmtMillis(ms float64) string {
	if ms < 1000 {
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.1fs", ms/1000)
}

// report prints the inventory table, figures and verdict, and returns the result.
func (d *run) report(ctx context.Context, nodeURL string, node *devnode.Server, m *traffic.Manifest, workers []*worker, views []workerView, missing []string, t reportTimes) (*Result, error) {
	res := &Result{Generated: m.Calls, Missing: int64(len(missing)), MaxLag: time.Duration(t.maxLagMillis) * time.Millisecond}
	res.Delivered = res.Generated - res.Missing
	delivered := node.DeliveredIDs()
	for _, id := range m.RequestIDs {
		if n := delivered[devnode.AsNodeIDPrefix(id)]; n > 1 {
			res.Duplicates += int64(n - 1)
		}
	}
	res.LatencyP50, res.LatencyP99, res.LatencyMax = latencies(node.Calls(), m)
	var endLag float64
	for i, w := range workers {
		endLag = max(endLag, views[i].lagMillis)
		res.Workers = append(res.Workers, WorkerResult{ID: w.id, Leases: views[i].leases, Delivered: int64(views[i].delivered),
			AlreadyHeld: int64(views[i].alreadyHeld), Rejected: int64(views[i].rejected)})
	}
	res.EndLag = time.Duration(endLag) * time.Millisecond
	if gen := t.genEnd.Sub(t.genStart).Seconds(); gen > 0 {
		res.GenerateRate = float64(m.Calls) / gen
	}
	if !t.allAt.IsZero() {
		res.DrainTime = t.allAt.Sub(t.genEnd)
		if s := t.allAt.Sub(t.genStart).Seconds(); s > 0 {
			res.DeliveryRate = float64(res.Delivered) / s
		}
	}

	// The inventory as devnode serves it on /inventory.
	inv, err := d.fetchInventory(ctx, nodeURL)
	if err != nil {
		return res, err
	}
	if b, err := json.MarshalIndent(inv, "", " "); err == nil {
		_ = os.WriteFile(filepath.Join(d.dir, "inventory.json"), b, 0o644)
	}
	groups, unexpected := matchInventory(m.Endpoints, inv)
	for _, r := range inv {
		res.InventoryCalls += r.Calls
	}
	fmt.Fprintf(d.out, "\nAPI inventory discovered by the node stand-in (devnode %s/inventory):\n", nodeURL)
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tHOST\tPATH TEMPLATE\tCALLS\tSTATUSES")
	sort.SliceStable(groups, func(i, j int) bool {
		a, b := groups[i].ep, groups[j].ep
		return a.Host < b.Host || a.Host == b.Host && (a.CalledTemplate < b.CalledTemplate || a.CalledTemplate == b.CalledTemplate && a.Method < b.Method)
	})
	for _, g := range groups {
		if g.ep.Calls == 0 && len(g.rows) == 0 {
			continue // never called: nothing to discover
		}
		res.Endpoints++
		if len(g.rows) == 0 {
			res.MissingEndpoints = append(res.MissingEndpoints, g.ep.Key())
			fmt.Fprintf(tw, "%s\t%s\t%s\t0\tMISSING (%d generated)\n", g.ep.Method, g.ep.Host, g.ep.CalledTemplate, g.ep.Calls)
			continue
		}
		res.Discovered++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", g.ep.Method, g.ep.Host, g.path(), g.calls(), formatStatuses(g.statuses()))
	}
	for _, r := range unexpected {
		res.Unexpected = append(res.Unexpected, r.Method+" "+r.Host+r.Path)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\tUNEXPECTED\n", r.Method, r.Host, r.Path, r.Calls)
	}
	tw.Flush()

	fmt.Fprintln(d.out)
	d.say("inventory: %d/%d generated endpoints discovered, %d inventory rows, %d calls", res.Discovered, res.Endpoints, len(inv), res.InventoryCalls)
	d.say("throughput: %d calls generated at %.0f calls/s over %s; delivered at %.0f calls/s; last call delivered %s after the traffic ended",
		res.Generated, res.GenerateRate, t.genEnd.Sub(t.genStart).Round(100*time.Millisecond), res.DeliveryRate, res.DrainTime.Round(10*time.Millisecond))
	d.say("lag (apigw_connector_kinesis_millis_behind_latest): max %s during the run, %s at the end", fmtMillis(t.maxLagMillis), fmtMillis(endLag))
	d.say("latency from the access-log time to the node: p50 %s, p99 %s, max %s (includes the subscription-like batching and 200ms polls)",
		res.LatencyP50.Round(time.Millisecond), res.LatencyP99.Round(time.Millisecond), res.LatencyMax.Round(time.Millisecond))
	for _, w := range res.Workers {
		d.say("%s", workerLine(w))
	}

	var errs []error
	if res.Missing > 0 {
		sample := missing[:min(5, len(missing))]
		d.say("%s (e.g. %s)", verdictLine(res), strings.Join(sample, ", "))
		errs = append(errs, fmt.Errorf("%w: %d of %d not delivered", ErrCallsLost, res.Missing, res.Generated))
	} else {
		d.say("%s", verdictLine(res))
	}
	if len(res.MissingEndpoints) > 0 || len(res.Unexpected) > 0 {
		errs = append(errs, fmt.Errorf("%w: %d endpoints missing, %d unexpected rows", ErrInventoryMismatch, len(res.MissingEndpoints), len(res.Unexpected)))
	}
	return res, errors.Join(errs...)
}

// latencies are percentiles of (arrival at the node - access-log time) over
// the generated calls the node completed.
func latencies(calls []devnode.Call, m *traffic.Manifest) (p50, p99, maxD time.Duration) {
	if len(m.RequestTimes) != len(m.RequestIDs) {
		return 0, 0, 0
	}
	at := make(map[string]int64, len(m.RequestIDs))
	for i, id := range m.RequestIDs {
		at[devnode.AsNodeIDPrefix(id)] = m.RequestTimes[i]
	}
	var ds []time.Duration
	for _, c := range calls {
		ms, ok := at[c.ID]
		if !ok {
			ms, ok = at[c.LogRequestID] // the node receives node ids: <request id>-<hash>
		}
		if ok {
			ds = append(ds, c.RequestAt.Sub(time.UnixMilli(ms)))
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	pct := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return pct(0.5), pct(0.99), ds[len(ds)-1]
}

func (d *run) fetchInventory(ctx context.Context, nodeURL string) ([]devnode.Endpoint, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nodeURL+"/inventory", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get devnode inventory: %w", err)
	}
	defer resp.Body.Close()
	var inv []devnode.Endpoint
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil {
		return nil, fmt.Errorf("decode devnode inventory: %w", err)
	}
	return inv, nil
}

// say prints one line prefixed with the demo's name.
func (d *run) say(format string, args ...any) {
	fmt.Fprintf(d.out, "demo: "+format+"\n", args...)
}

// start starts a child process (tier tool, 2s grace unless changed) and
// registers it for the shutdown.
func (d *run) start(ctx context.Context, name string, cmd *exec.Cmd) (*proc, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil { // no new children once stopping
		return nil, err
	}
	p, err := startProc(name, cmd, filepath.Join(d.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	d.procs = append(d.procs, p)
	tier := tierTool
	if name == "kinesis-mock" || name == "dynalite" {
		tier = tierEmulator
	}
	d.tiers[p], d.grace[p] = tier, 2*time.Second
	if d.o.OnProcess != nil {
		d.o.OnProcess(name, p.pid())
	}
	d.say("started %s (pid %d, log %s)", name, p.pid(), p.logPath)
	return p, nil
}

func (d *run) setTier(p *proc, tier int, grace time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tiers[p], d.grace[p] = tier, grace
}

// waitProc waits for a process to end by itself; ctx's end leaves it to
// the shutdown.
func (d *run) waitProc(ctx context.Context, p *proc) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *run) stopProc(p *proc, grace time.Duration) {
	p.stop(grace, d.o.StopNow)
}

// shutdown stops every child, tier by tier (the workers together), and
// checks that no process group it created is left.
func (d *run) shutdown() {
	d.mu.Lock()
	procs := append([]*proc(nil), d.procs...)
	tiers, grace := d.tiers, d.grace
	d.procs = nil
	d.mu.Unlock()
	defer func() {
		if d.afterWorkers != nil {
			d.afterWorkers()
		}
	}()
	if len(procs) == 0 {
		return
	}
	for tier := tierTraffic; tier >= tierTool; tier-- {
		var wg sync.WaitGroup
		for _, p := range procs {
			if tiers[p] != tier {
				continue
			}
			wg.Add(1)
			go func(p *proc) {
				defer wg.Done()
				d.stopProc(p, grace[p])
			}(p)
		}
		wg.Wait()
		if tier == tierWorker && d.afterWorkers != nil {
			d.afterWorkers()
			d.afterWorkers = nil
		}
	}
	var alive []string
	for _, p := range procs {
		if emulator.ProcessGroupAlive(p.pid()) {
			alive = append(alive, fmt.Sprintf("%s (pgid %d)", p.name, p.pid()))
		}
	}
	if len(alive) > 0 {
		d.say("WARNING: processes still alive after the shutdown: %s", strings.Join(alive, ", "))
		return
	}
	d.say("stopped all %d processes it started", len(procs))
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "install-emulators.sh")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository: no go.mod with scripts/install-emulators.sh above the working directory: run the demo from the repository (make demo)")
		}
		dir = parent
	}
}
