package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/internal/app"
	"github.com/wallarm/apigw-connector/internal/procs"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/replay"
	"github.com/wallarm/apigw-connector/pkg/source/file"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

func cmdReplay(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", stderr)
	var cf commonFlags
	cf.register(fs)
	grace := fs.Duration("grace", 10*time.Second, "on SIGTERM/SIGINT, how long in-flight calls may still settle")
	var pace replay.Options
	fs.Float64Var(&pace.Rate, "rate", 0, "send `N` calls per second, evenly spread (default: unpaced, as fast as the node takes them)")
	fs.Float64Var(&pace.Speed, "speed", 0, "follow the log's own timing (each call's requestTimeEpoch, else its CloudWatch Logs timestamp)\ncompressed `X` times: 60 sends an hour of log in a minute, 1 replays in real time")
	maxWait := fs.Duration("max-wait", 0, "give up when the node accepts nothing for this long: report the undelivered calls and exit 1\n(default: wait for the node however long it takes)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: apigw-connector replay [flags] [FILE...|-]\n\nForwards the calls in each input to the node. Inputs are detected by content (gzip or plain):\n"+
			"access-log lines (JSON per line, optionally prefixed by an export timestamp or `aws logs tail`'s\n"+
			"timestamp and log stream), CloudWatch Logs subscription documents (concatenated, e.g. exports and\n"+
			"Firehose-to-S3 objects), Lambda events ({\"awslogs\":...}, on-failure destination records, Kinesis\n"+
			"{\"Records\":[...]}), Firehose request bodies, Firehose S3 backup records (rawData) and\n"+
			"`aws logs filter-log-events` output. Files are streamed; a damaged member or document is skipped,\n"+
			"counted and logged with its position. No FILE or - reads stdin.\n\n"+
			"API Discovery judges endpoints by requests spread over time as the node receives them: backfill\n"+
			"a long export with --speed (the log's own timing, compressed) or --rate. On a terminal a progress\n"+
			"line shows calls sent, the rate, the ETA and, while the node is down, the calls waiting.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := pace.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if *maxWait < 0 {
		return usageErrorf("--max-wait must be a positive duration (e.g. 5m), got %s", *maxWait)
	}
	// Every named input must be readable before anything is sent: a typo in
	// the third file name must not leave the first two half replayed.
	for _, name := range fs.Args() {
		if name == "-" {
			continue
		}
		st, err := os.Stat(name)
		switch {
		case err != nil:
			return usageErrorf("cannot read input: %v", err)
		case st.IsDir():
			return usageErrorf("input %s is a directory: pass the files in it (e.g. %s/*)", name, strings.TrimRight(name, "/"))
		}
	}
	metricsFlag := cf.metricsAddr
	cfg, err := cf.load()
	if err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	if metricsFlag == "" {
		cfg.Metrics.Addr = "" // a one-shot command listens only when asked to
	}
	if err := cfg.Validate(); err != nil {
		return exitError{code: 1, msg: "invalid configuration: " + err.Error()}
	}
	// On a terminal, log lines clear the progress line first, so the two
	// never share a line; the next tick draws it again.
	var term *replay.Terminal
	logOut := stderr
	if isTerminal(stderr) {
		term = replay.NewTerminal(stderr)
		logOut = term.Writer(stderr)
	}
	log := newLogger(cfg, logOut)
	procs.FitCPULimit(log)
	reg := telemetry.NewRegistry()
	var pacer *replay.Pacer
	if pace.Paced() {
		pacer = replay.NewPacer(pace)
	}
	var fwd *replay.Forwarder
	core, err := app.NewCoreWith(cfg, reg, log, func(c *node.Client) pipeline.Forwarder {
		fwd = replay.NewForwarder(c, pacer, nil)
		return fwd
	})
	if err != nil {
		return err
	}
	if !pace.Paced() {
		fwd.SpanLimit = burstSpan
		fwd.SpanWarn = func(span time.Duration) {
			log.Warn(fmt.Sprintf("unpaced replay of %s of log time: the node receives it in a burst, but API Discovery judges endpoints by requests spread over time as the node receives them; pace a backfill with --speed (the log's own timing, e.g. --speed 60: an hour in a minute) or --rate N (calls per second)", span.Round(time.Minute)),
				"span", span.Round(time.Second).String())
		}
	}
	if cfg.Metrics.Addr != "" {
		tel := telemetry.NewServer(cfg.Metrics.Addr, reg, log)
		if err := tel.Start(ctx); err != nil {
			return err
		}
		defer tel.Shutdown(context.Background())
	}
	if err := core.Start(ctx, false); err != nil {
		return err
	}

	// Delivery outlives the signal by the grace period, so in-flight calls
	// can finish; what is still pending then is reported as undelivered.
	// Reading stops on the signal or when --max-wait gives up.
	deliverCtx, cancelDeliver := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliver()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	stopGrace := context.AfterFunc(ctx, func() {
		log.Warn("signal received: reading stopped, letting in-flight calls settle", "grace", grace.String())
		if pacer == nil {
			time.AfterFunc(*grace, cancelDeliver)
			return
		}
		// Paced: the calls waiting for their slot are not sent (at pace they
		// could outlast any grace; unpaced they would be the burst pacing
		// avoids): the calls being sent settle, the rest are undelivered.
		drained := fwd.Stop()
		go func() {
			t := time.NewTimer(*grace)
			defer t.Stop()
			select {
			case <-drained:
			case <-t.C:
			}
			cancelDeliver()
		}()
	})
	defer stopGrace()

	start := time.Now()
	var (
		mu    sync.Mutex
		total pipeline.Outcome
		wg    sync.WaitGroup
	)
	settlements := make(chan *pipeline.Settlement, 1024)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for s := range settlements {
			o := s.Outcome()
			mu.Lock()
			total.Add(o)
			mu.Unlock()
		}
	}()
	emit := func(b pipeline.Batch) error {
		s, err := core.Pipeline.Submit(deliverCtx, b)
		if err != nil {
			return err
		}
		settlements <- s
		return readCtx.Err() // stop reading on the first signal or --max-wait
	}

	var readAll atomic.Bool // the input was read to its end: the total is known
	w := &replay.Watch{Forwarder: fwd, Node: core.Node, Metrics: reg, Term: term, Rate: pace.Rate, ReadAll: &readAll, MaxWait: *maxWait}
	w.OnGiveUp = func(stalled time.Duration) {
		log.Error("node unreachable: no call accepted within --max-wait, giving up", "max_wait", maxWait.String(), "stalled", stalled.Round(time.Second).String())
		stopReading()
		fwd.Stop()
		cancelDeliver() // the node is not answering: nothing more will settle
	}
	w.Start()

	opts := file.DefaultOptions()
	if cfg.Decode.MaxDecompressedBytes > 0 {
		opts.MaxDocumentBytes = cfg.Decode.MaxDecompressedBytes // per document: files are streamed
	}
	opts.Log = log
	names := fs.Args()
	if len(names) == 0 {
		names = []string{"-"}
	}
	stopCountAhead := func() {}
	if term != nil && pacer != nil && !slices.Contains(names, "-") {
		// A paced replay of files lasts; counting ahead costs one more
		// decompression while the pacer mostly waits.
		countCtx, stopCount := context.WithCancel(readCtx)
		counted := make(chan struct{})
		go func() {
			defer close(counted)
			if n, err := replay.CountEvents(countCtx, names, cwlogs.NewDecoder(cfg.DecoderOptions()), opts); err == nil {
				w.Expected.Store(n)
			}
		}()
		stopCountAhead = func() { stopCount(); <-counted }
	}
	if slices.Contains(names, "-") && isTerminal(stdin) {
		fmt.Fprintln(logOut, "replay: reading access-log lines from the terminal (end with Ctrl-D; pass FILE arguments to replay files)")
		stdin = &stickyEOF{r: stdin}
	}
	var readErr error
	var inputErrors int // stretches of input the reader skipped (damaged members, malformed values)
	read := func(label string, r io.Reader) error {
		st, err := file.Read(readCtx, label, r, opts, emit)
		inputErrors += st.DecodeErrors
		return err
	}
	for _, name := range names {
		if readCtx.Err() != nil {
			break
		}
		var r io.Reader = stdin
		label := "stdin"
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				readErr = err // *PathError: names the file
				break
			}
			r, label = f, name
			err = read(label, r)
			f.Close()
			if err != nil && readCtx.Err() == nil {
				readErr = err
				break
			}
			continue
		}
		if err := read(label, r); err != nil && readCtx.Err() == nil {
			readErr = err
			break
		}
	}
	readAll.Store(readErr == nil && readCtx.Err() == nil)
	stopCountAhead() // the exact total is known now
	close(settlements)
	wg.Wait()
	total.DecodeErrors += inputErrors
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *grace+5*time.Second)
	defer cancel()
	_ = core.Shutdown(shutdownCtx)
	elapsed := time.Since(start)
	gaveUp := w.Stop()

	printSummary(stdout, total, reg, elapsed)
	switch {
	case readErr != nil:
		return readErr
	case gaveUp:
		return exitError{code: 1, msg: fmt.Sprintf("replay gave up: the node accepted no call for %s (--max-wait); %d calls were not delivered (%d delivered before): replay the input again once the node is reachable (delivery is at-least-once)", *maxWait, total.Abandoned, total.Delivered)}
	case total.Abandoned > 0:
		return exitError{code: 1, msg: fmt.Sprintf("replay incomplete: %d calls were not delivered (interrupted or node unreachable); replay the input again: delivery is at-least-once", total.Abandoned)}
	case total.Rejected > 0:
		return exitError{code: 1, msg: fmt.Sprintf("replay finished with %d calls permanently rejected by the node (see rejected by code above)", total.Rejected)}
	case ctx.Err() != nil:
		return exitError{code: 1, msg: "replay interrupted before the end of the input"}
	case total.Calls == 0 && total.ParseErrors+total.DecodeErrors > 0:
		// Nothing usable: most often a non-JSON access-log format or the wrong log group.
		return exitError{code: 1, msg: fmt.Sprintf("replay found no API call in the input (%d lines not parsed, %d records not decoded; reasons above): check that the stage's access-log format is JSON (README \"Access-log format\") and that the input is an access log", total.ParseErrors, total.DecodeErrors)}
	}
	return nil
}

// burstSpan is the span of log time beyond which an unpaced replay warns:
// ten minutes of traffic arriving in seconds no longer looks like traffic.
const burstSpan = 10 * time.Minute

// stickyEOF ends the input at the first end of input: a terminal reports
// Ctrl-D once, and the buffered readers behind read again after it.
type stickyEOF struct {
	r   io.Reader
	eof bool
}

func (s *stickyEOF) Read(p []byte) (int, error) {
	if s.eof {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	if errors.Is(err, io.EOF) {
		s.eof = true
	}
	return n, err
}

// isTerminal reports whether v is an interactive terminal (not redirected,
// not /dev/null).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && isTTY(f.Fd())
}

func printSummary(w io.Writer, o pipeline.Outcome, g prometheus.Gatherer, elapsed time.Duration) {
	m := telemetry.Read(g) // one snapshot for every figure below
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(o.Delivered) / s
	}
	fmt.Fprintf(w, "replay summary\n")
	fmt.Fprintf(w, "  lines read:      %d\n", o.Events)
	fmt.Fprintf(w, "  calls parsed:    %d\n", o.Calls)
	fmt.Fprintf(w, "  delivered:       %d (%.0f calls/s over %s)\n", o.Delivered, rate, elapsed.Round(time.Millisecond))
	if o.AlreadyHeld > 0 {
		fmt.Fprintf(w, "  already held:    %d of the delivered (the node had them from an earlier delivery: replaying the same input again is safe)\n", o.AlreadyHeld)
	}
	fmt.Fprintf(w, "  rejected:        %d%s\n", o.Rejected, labelsOf(m, "apigw_connector_node_rejected_total", "code"))
	fmt.Fprintf(w, "  undelivered:     %d\n", o.Abandoned)
	fmt.Fprintf(w, "  filtered:        %d\n", o.Filtered)
	fmt.Fprintf(w, "  parse errors:    %d%s\n", o.ParseErrors, labelsOf(m, "apigw_connector_parse_errors_total", "reason"))
	fmt.Fprintf(w, "  decode errors:   %d%s\n", o.DecodeErrors, labelsOf(m, "apigw_connector_decode_errors_total", "reason"))
	fmt.Fprintf(w, "  retries:         %.0f%s\n", m.Sum("apigw_connector_node_retries_total", "", ""), labelsOf(m, "apigw_connector_node_retries_total", "reason"))
}

// labelsOf renders a counter's non-zero values by one label, e.g. " (400=2, 415=1)".
func labelsOf(m telemetry.Snapshot, name, label string) string {
	var parts []string
	for v, n := range m.ByLabel(name, label) {
		parts = append(parts, fmt.Sprintf("%s=%.0f", v, n))
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}
