package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// Output formats of generate.
const (
	genFormatLines = "lines"       // one access-log line per line (an export of the log group)
	genFormatGzip  = "cwlogs-gzip" // subscription documents, each its own gzip member (what a Kinesis record holds)
	genFormatJSON  = "cwlogs-json" // subscription documents as JSON, one per line (Firehose with decompression)
)

// Kinesis PutRecords limits (per request: 500 records, 5 MiB including the
// partition keys; per record: 1 MiB including its partition key).
const (
	putMaxRecords     = 500
	putMaxBytes       = 5 << 20
	putMaxRecordBytes = 1 << 20
	partitionKeyLen   = 32
)

// genOptions are the parsed flags of generate.
type genOptions struct {
	rate       float64
	duration   time.Duration
	count      int64
	apis       int
	endpoints  int
	errorShare float64
	seed       int64
	minEvents  int
	maxEvents  int
	format     string
	out        string // "" = no file output
	stream     string
	manifest   string
	start      time.Time // zero: wall-clock timestamps
	routeKeys  bool
	control    bool
	progress   time.Duration
}

func cmdGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseGenerateFlags(args, stderr)
	if err != nil {
		return err
	}
	var kc *kinesis.Client
	if o.stream != "" {
		// Region, credentials and endpoint from the SDK's standard sources
		// (AWS_REGION, AWS_ENDPOINT_URL_KINESIS, profiles, roles).
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("load AWS configuration: %w", err)
		}
		kc = kinesis.NewFromConfig(awsCfg)
	}
	g := newTrafficRun(o)
	if o.out != "" {
		w := stdout
		if o.out != "-" {
			f, err := os.Create(o.out)
			if err != nil {
				return fmt.Errorf("create output: %w", err)
			}
			defer f.Close()
			w = f
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		g.file = bw
		defer bw.Flush()
	}
	if kc != nil {
		g.put = &kinesisPutter{client: kc, stream: o.stream, rng: g.rng}
	}
	runErr := g.run(ctx, stderr)
	if g.file != nil {
		if err := g.file.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("write output: %w", err)
		}
	}
	if o.manifest != "" {
		if err := g.writeManifest(o.manifest); err != nil && runErr == nil {
			runErr = err
		}
	}
	fmt.Fprintln(stderr, g.summary())
	if runErr == nil && ctx.Err() != nil {
		return exitError{code: 130, msg: "generate: interrupted; the manifest lists only the calls written"}
	}
	return runErr
}

func parseGenerateFlags(args []string, stderr io.Writer) (genOptions, error) {
	d := traffic.DefaultOptions()
	var o genOptions
	fs := newFlagSet("generate", stderr)
	fs.Float64Var(&o.rate, "rate", 200, "calls per second (0: as fast as possible; with --count and no --rate: as fast as possible)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to generate (0: until --count; with --count and no --duration: until --count)")
	fs.Int64Var(&o.count, "count", 0, "total calls (0: rate x duration); alone it writes them as fast as possible")
	fs.IntVar(&o.apis, "apis", d.APIs, "number of API Gateway APIs")
	fs.IntVar(&o.endpoints, "endpoints", d.EndpointsPerAPI, "endpoints per API")
	fs.Float64Var(&o.errorShare, "error-share", d.ErrorShare, "share of 4xx/5xx calls, 0-1")
	fs.Int64Var(&o.seed, "seed", 0, "PRNG seed: the same seed gives the same APIs, endpoints and request ids (0: random)")
	events := fs.String("events-per-record", "10-50", "log events per subscription document: N or MIN-MAX")
	fs.StringVar(&o.format, "format", "", "lines, cwlogs-gzip or cwlogs-json (default lines; cwlogs-gzip with --stream)")
	fs.StringVar(&o.out, "out", "", "output FILE or - for stdout (default stdout, none with --stream)")
	fs.StringVar(&o.stream, "stream", "", "Kinesis stream NAME or ARN to put the records to (endpoint, region and credentials from the AWS SDK environment, e.g. AWS_ENDPOINT_URL_KINESIS)")
	fs.StringVar(&o.manifest, "manifest", "", "write a JSON manifest (endpoints and request ids of the calls written) to FILE")
	start := fs.String("start", "", "RFC 3339 time of the first call: synthetic timestamps, fully reproducible with --seed (default: wall-clock time)")
	fs.BoolVar(&o.routeKeys, "route-keys", false, "also log the route template (resourcePath for REST APIs, routeKey for HTTP APIs)")
	fs.BoolVar(&o.control, "control-message", false, "begin with a CONTROL_MESSAGE document, as a new subscription filter does (cwlogs formats only)")
	fs.DurationVar(&o.progress, "progress", 0, "print a progress line to stderr at this interval (0: only the final line)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: apigw-connector generate [flags]\n\nGenerates realistic Amazon API Gateway access-log traffic as CloudWatch Logs subscription data:\nto stdout or a file (access-log lines or subscription documents) or to a Kinesis stream\n(PutRecords with random partition keys, as a subscription filter writes).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.count > 0 && !set["rate"] {
		// Asking for N calls means a file of N calls, not a 200 calls/s wait
		// for it; pacing stays available with an explicit --rate.
		o.rate = 0
		if !set["duration"] {
			o.duration = 0
		}
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "generate: "+format+"\n", a...)
		return errUsage
	}
	if fs.NArg() > 0 {
		return o, usageErr("takes no arguments, got %q", fs.Args())
	}
	var err error
	if o.minEvents, o.maxEvents, err = parseRange(*events); err != nil {
		return o, usageErr("--events-per-record: %v", err)
	}
	switch {
	case o.rate < 0:
		return o, usageErr("--rate must be 0 or more, got %v", o.rate)
	case o.duration < 0:
		return o, usageErr("--duration must be 0 or more, got %s", o.duration)
	case o.count < 0:
		return o, usageErr("--count must be 0 or more, got %d", o.count)
	case o.duration == 0 && o.count == 0:
		return o, usageErr("--duration 0 needs --count: the run would never end")
	case o.rate == 0 && o.count == 0 && !set["duration"]:
		return o, usageErr("--rate 0 (as fast as possible) needs --count or an explicit --duration")
	case o.apis < 1 || o.apis > 1000:
		return o, usageErr("--apis must be between 1 and 1000, got %d", o.apis)
	case o.endpoints < 1 || o.endpoints > 1000:
		return o, usageErr("--endpoints must be between 1 and 1000, got %d", o.endpoints)
	case o.errorShare < 0 || o.errorShare > 1:
		return o, usageErr("--error-share must be between 0 and 1, got %v", o.errorShare)
	case o.progress < 0:
		return o, usageErr("--progress must be 0 or more, got %s", o.progress)
	}
	if o.format == "" {
		o.format = genFormatLines
		if o.stream != "" {
			o.format = genFormatGzip
		}
	}
	switch o.format {
	case genFormatLines, genFormatGzip, genFormatJSON:
	default:
		return o, usageErr("--format must be lines, cwlogs-gzip or cwlogs-json, got %q", o.format)
	}
	if o.stream != "" {
		if o.format == genFormatLines {
			return o, usageErr("--format lines cannot go to a Kinesis stream: a subscription writes cwlogs-gzip (or cwlogs-json) documents")
		}
		if strings.HasPrefix(o.stream, "arn:") && !strings.Contains(o.stream, ":stream/") {
			return o, usageErr("--stream must be a stream name or ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME), got %q", o.stream)
		}
	} else if o.out == "" {
		o.out = "-"
	}
	if o.control && o.format == genFormatLines {
		return o, usageErr("--control-message needs a cwlogs format: access-log lines have no control messages")
	}
	if *start != "" {
		if o.start, err = time.Parse(time.RFC3339Nano, *start); err != nil {
			return o, usageErr("--start must be an RFC 3339 time like 2026-11-24T10:00:00Z, got %q", *start)
		}
	}
	if o.seed == 0 {
		o.seed = mrand.Int64N(1<<53) + 1
	}
	return o, nil
}

// parseRange parses "N" or "MIN-MAX" (1-10000: a subscription document holds
// at most 10,000 events).
func parseRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if lo, err = strconv.Atoi(strings.TrimSpace(a)); err != nil {
		return 0, 0, fmt.Errorf("want N or MIN-MAX, got %q", s)
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, fmt.Errorf("want N or MIN-MAX, got %q", s)
		}
	}
	if lo < 1 || hi < lo || hi > 10000 {
		return 0, 0, fmt.Errorf("want 1 <= MIN <= MAX <= 10000, got %q", s)
	}
	return lo, hi, nil
}

// genRecord is one subscription document (or, for lines, a group of lines)
// with the request ids of its calls.
type genRecord struct {
	data  []byte
	ids   []string
	times []int64 // epoch ms of each call
	eps   []int   // endpoint index of each call
	calls int
}

// trafficRun generates, paces and writes the traffic, and keeps the tallies
// and the manifest of what was written.
type trafficRun struct {
	o         genOptions
	g         *traffic.Generator
	rng       *mrand.Rand
	epIndex   map[*traffic.Endpoint]int
	logStream map[*traffic.API][]string
	eventSeq  uint64
	lastMS    int64

	file *bufio.Writer
	put  *kinesisPutter

	// tallies of what was written
	calls, records, bytes, errCalls int64
	ids                             []string
	times                           []int64
	epCalls                         []int64
	started, finished               time.Time
	dropped                         int64 // calls the pacing gave up on after falling behind
}

func newTrafficRun(o genOptions) *trafficRun {
	topts := traffic.Options{Seed: o.seed, APIs: o.apis, EndpointsPerAPI: o.endpoints, ErrorShare: o.errorShare, Start: o.start, RouteKeys: o.routeKeys}
	g := traffic.New(topts)
	r := &trafficRun{
		o:         o,
		g:         g,
		rng:       mrand.New(mrand.NewPCG(uint64(o.seed), 0x5eed)),
		epIndex:   map[*traffic.Endpoint]int{},
		logStream: map[*traffic.API][]string{},
	}
	eps := g.Endpoints()
	for i := range eps {
		r.epIndex[&eps[i]] = i
	}
	r.epCalls = make([]int64, len(eps))
	// A few log streams per stage, as API Gateway writes access logs.
	for _, a := range g.APIs() {
		for range 3 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.rng.Uint32())
			}
			r.logStream[a] = append(r.logStream[a], hex.EncodeToString(b[:]))
		}
	}
	return r
}

// makeRecords generates n calls in subscription documents of
// minEvents..maxEvents events of one API each. Calls get wall-clock times
// spread over [from, to) unless --start asked for synthetic ones.
func (r *trafficRun) makeRecords(n int64, from, to time.Time) []genRecord {
	var out []genRecord
	apis := r.g.APIs()
	total := n
	var done int64
	var line []byte
	for n > 0 {
		k := int64(r.o.minEvents + r.rng.IntN(r.o.maxEvents-r.o.minEvents+1))
		k = min(k, n)
		api := apis[r.rng.IntN(len(apis))]
		evs := make([]traffic.LogEvent, k)
		rec := genRecord{ids: make([]string, k), times: make([]int64, k), eps: make([]int, k), calls: int(k)}
		for i := range evs {
			c := r.g.NextFor(api)
			if r.o.start.IsZero() {
				// Spread the calls of this tick evenly: near-real-time timing, as the
				// node's API Discovery expects.
				span := to.Sub(from)
				c.Time = from.Add(time.Duration(float64(span) * float64(done) / float64(total))).UTC().Truncate(time.Millisecond)
			}
			done++
			ms := c.Time.UnixMilli()
			if ms < r.lastMS { // CloudWatch Logs event ids grow with time
				ms = r.lastMS
			}
			r.lastMS = ms
			line = r.g.AppendLine(line[:0], &c)
			evs[i] = traffic.LogEvent{ID: r.eventID(ms), Timestamp: ms, Message: string(line)}
			rec.ids[i] = c.RequestID
			rec.times[i] = ms
			rec.eps[i] = r.epIndex[c.Endpoint]
			if c.Status >= 400 {
				r.errCalls++
			}
		}
		n -= k
		streams := r.logStream[api]
		out = append(out, r.encode(api.LogGroup, streams[r.rng.IntN(len(streams))], evs, rec)...)
	}
	return out
}

// encode renders one document in the output format, splitting it when it
// would exceed a Kinesis record.
func (r *trafficRun) encode(group, stream string, evs []traffic.LogEvent, rec genRecord) []genRecord {
	switch r.o.format {
	case genFormatLines:
		var b []byte
		for _, e := range evs {
			b = append(b, e.Message...)
			b = append(b, '\n')
		}
		rec.data = b
	case genFormatJSON:
		rec.data = append(traffic.Envelope(group, stream, evs), '\n')
	default:
		rec.data = traffic.GzipEnvelope(group, stream, evs)
	}
	if len(rec.data)+partitionKeyLen <= putMaxRecordBytes || len(evs) == 1 {
		return []genRecord{rec}
	}
	h := len(evs) / 2
	a := genRecord{ids: rec.ids[:h], times: rec.times[:h], eps: rec.eps[:h], calls: h}
	b := genRecord{ids: rec.ids[h:], times: rec.times[h:], eps: rec.eps[h:], calls: len(evs) - h}
	return append(r.encode(group, stream, evs[:h], a), r.encode(group, stream, evs[h:], b)...)
}

// eventID builds the next event id (see traffic.EventID).
func (r *trafficRun) eventID(ms int64) string {
	r.eventSeq++
	return traffic.EventID(ms, r.eventSeq, r.rng)
}

// run paces the generation with a ticker until --duration or --count, or ctx ends.
func (r *trafficRun) run(ctx context.Context, stderr io.Writer) error {
	r.started = time.Now()
	defer func() { r.finished = time.Now() }()
	if r.o.control {
		var data []byte
		if r.o.format == genFormatJSON {
			data = append(traffic.ControlMessage(), '\n')
		} else {
			data = traffic.Gzip(traffic.ControlMessage())
		}
		if err := r.write(ctx, []genRecord{{data: data}}); err != nil {
			return err
		}
	}
	var progress <-chan time.Time
	if r.o.progress > 0 {
		pt := time.NewTicker(r.o.progress)
		defer pt.Stop()
		progress = pt.C
	}
	if r.o.rate == 0 {
		return r.runUnpaced(ctx, stderr, progress)
	}
	// One tick carries about minEvents calls (a subscription batches events),
	// between 100 ms and 1 s apart.
	tick := time.Duration(float64(r.o.minEvents) / r.o.rate * float64(time.Second))
	tick = min(max(tick, 100*time.Millisecond), time.Second)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	// Falling behind (a slow stream) never turns into an unbounded burst: at
	// most one second of calls is caught up per tick; the rest is dropped and counted.
	maxBurst := max(int64(r.o.rate), 1)
	last := r.started
	var planned int64 // calls due so far, including dropped ones
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return nil
		case <-progress:
			r.printProgress(stderr)
			continue
		case now = <-ticker.C:
		}
		elapsed := now.Sub(r.started)
		end := r.o.duration > 0 && elapsed >= r.o.duration
		if end {
			elapsed = r.o.duration
			now = r.started.Add(elapsed)
		}
		target := int64(r.o.rate * elapsed.Seconds())
		if r.o.count > 0 && target >= r.o.count {
			target, end = r.o.count, true
		}
		due := target - planned
		planned = target
		if due > maxBurst {
			r.dropped += due - maxBurst
			due = maxBurst
		}
		if due > 0 {
			if err := r.write(ctx, r.makeRecords(due, last, now)); err != nil {
				return err
			}
		}
		last = now
		if end {
			return nil
		}
	}
}

func (r *trafficRun) runUnpaced(ctx context.Context, stderr io.Writer, progress <-chan time.Time) error {
	const chunk = 2000
	var deadline <-chan time.Time
	if r.o.duration > 0 {
		t := time.NewTimer(r.o.duration)
		defer t.Stop()
		deadline = t.C
	}
	for r.o.count == 0 || r.calls < r.o.count {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case <-progress:
			r.printProgress(stderr)
		default:
		}
		n := int64(chunk)
		if r.o.count > 0 {
			n = min(n, r.o.count-r.calls)
		}
		now := time.Now()
		if err := r.write(ctx, r.makeRecords(n, now, now)); err != nil {
			return err
		}
	}
	return nil
}

// write delivers records to the file and the stream, then counts them as written.
func (r *trafficRun) write(ctx context.Context, recs []genRecord) error {
	if r.file != nil {
		for _, rec := range recs {
			if _, err := r.file.Write(rec.data); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		}
	}
	if r.put != nil {
		data := make([][]byte, len(recs))
		for i := range recs {
			data[i] = recs[i].data
		}
		if err := r.put.putAll(ctx, data); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: these records are not counted as written
			}
			return err
		}
	}
	for _, rec := range recs {
		if rec.calls == 0 {
			continue // control message
		}
		r.records++
		r.bytes += int64(len(rec.data))
		r.calls += int64(rec.calls)
		if r.o.manifest != "" {
			r.ids = append(r.ids, rec.ids...)
			r.times = append(r.times, rec.times...)
		}
		for _, e := range rec.eps {
			r.epCalls[e]++
		}
	}
	return nil
}

// unit names what one written unit is in the output format: a subscription
// groups calls into documents (Kinesis records on a stream), plain output is
// one line per call.
func (r *trafficRun) unit() string {
	switch {
	case r.put != nil:
		return "Kinesis records"
	case r.o.format == genFormatLines:
		return "lines"
	default:
		return "subscription documents"
	}
}

// units is how many units were written: for lines one per call.
func (r *trafficRun) units() int64 {
	if r.put == nil && r.o.format == genFormatLines {
		return r.calls
	}
	return r.records
}

func (r *trafficRun) printProgress(w io.Writer) {
	fmt.Fprintf(w, "generate: progress calls=%d %s=%d elapsed=%s\n", r.calls, strings.ReplaceAll(r.unit(), " ", "_"), r.units(), time.Since(r.started).Round(100*time.Millisecond))
}

func (r *trafficRun) summary() string {
	elapsed := r.finished.Sub(r.started)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(r.calls) / elapsed.Seconds()
	}
	dest := "stdout"
	switch {
	case r.put != nil:
		dest = "stream " + r.o.stream
	case r.o.out != "-":
		dest = r.o.out
	}
	errPct := 0.0
	if r.calls > 0 {
		errPct = 100 * float64(r.errCalls) / float64(r.calls)
	}
	s := fmt.Sprintf("generate: %d calls in %d %s (%s, %.1f KiB) to %s over %s = %.0f calls/s; %d APIs, %d endpoints, %.1f%% errors, seed %d",
		r.calls, r.units(), r.unit(), r.o.format, float64(r.bytes)/1024, dest, elapsed.Round(time.Millisecond), rate,
		len(r.g.APIs()), len(r.g.Endpoints()), errPct, r.o.seed)
	if r.put != nil {
		s += fmt.Sprintf("; %d PutRecords calls, %d records retried", r.put.calls, r.put.retried)
	}
	if r.dropped > 0 {
		s += fmt.Sprintf("; %d calls skipped: the output could not keep up with --rate", r.dropped)
	}
	return s
}

func (r *trafficRun) writeManifest(path string) error {
	m := traffic.Manifest{
		Seed: r.o.seed, Format: r.o.format, Stream: r.o.stream, Started: r.started.UTC(), Finished: r.finished.UTC(),
		Calls: r.calls, Records: r.records, RequestIDs: r.ids, RequestTimes: r.times,
	}
	if m.RequestIDs == nil {
		m.RequestIDs, m.RequestTimes = []string{}, []int64{}
	}
	for i, e := range r.g.Endpoints() {
		m.Endpoints = append(m.Endpoints, traffic.ManifestEndpoint{
			Method: e.Method, Host: e.API.Host, PathTemplate: e.PathTemplate, CalledTemplate: e.CalledTemplate(),
			APIID: e.API.ID, APIKind: e.API.Kind.String(), Stage: e.API.Stage, Calls: r.epCalls[i],
		})
	}
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// kinesisPutter writes records with PutRecords, within its limits, retrying
// the records Kinesis reports as failed.
type kinesisPutter struct {
	client  *kinesis.Client
	stream  string
	rng     *mrand.Rand
	calls   int64
	retried int64
}

func (p *kinesisPutter) putAll(ctx context.Context, data [][]byte) error {
	var batch []ktypes.PutRecordsRequestEntry
	size := 0
	for _, d := range data {
		e := ktypes.PutRecordsRequestEntry{Data: d, PartitionKey: aws.String(p.partitionKey())}
		n := len(d) + partitionKeyLen
		if len(batch) == putMaxRecords || (len(batch) > 0 && size+n > putMaxBytes) {
			if err := p.put(ctx, batch); err != nil {
				return err
			}
			batch, size = nil, 0
		}
		batch = append(batch, e)
		size += n
	}
	if len(batch) > 0 {
		return p.put(ctx, batch)
	}
	return nil
}

// partitionKey is random, as a CloudWatch Logs subscription's, so records
// spread over every shard.
func (p *kinesisPutter) partitionKey() string {
	var b [partitionKeyLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// put sends one PutRecords request and resends the failed entries (throttled
// or internal failures) with capped exponential backoff until all are in or
// ctx ends. Errors of the whole call are retried a few times beyond the SDK's
// own retries, unless they are permanent (no such stream, access denied...).
func (p *kinesisPutter) put(ctx context.Context, entries []ktypes.PutRecordsRequestEntry) error {
	backoff := 100 * time.Millisecond
	callErrors := 0
	for {
		in := &kinesis.PutRecordsInput{Records: entries}
		if strings.HasPrefix(p.stream, "arn:") {
			in.StreamARN = aws.String(p.stream)
		} else {
			in.StreamName = aws.String(p.stream)
		}
		p.calls++
		out, err := p.client.PutRecords(ctx, in)
		switch {
		case err != nil && (ctx.Err() != nil || permanentKinesisError(err) || callErrors >= 5):
			return fmt.Errorf("put records to %s: %w", p.stream, err)
		case err != nil:
			callErrors++
		case aws.ToInt32(out.FailedRecordCount) == 0:
			return nil
		default:
			var failed []ktypes.PutRecordsRequestEntry
			for i, res := range out.Records {
				if res.ErrorCode != nil && i < len(entries) {
					failed = append(failed, entries[i])
				}
			}
			p.retried += int64(len(failed))
			entries = failed
			if len(entries) == 0 {
				return nil
			}
		}
		t := time.NewTimer(backoff + time.Duration(p.rng.Int64N(int64(backoff)/2+1)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("put records to %s: %w", p.stream, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func permanentKinesisError(err error) bool {
	var (
		notFound *ktypes.ResourceNotFoundException
		invalid  *ktypes.InvalidArgumentException
		denied   *ktypes.AccessDeniedException
	)
	return errors.As(err, &notFound) || errors.As(err, &invalid) || errors.As(err, &denied)
}
