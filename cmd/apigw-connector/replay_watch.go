package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/replay"
	"github.com/wallarm/apigw-connector/pkg/source/file"
)

// watch draws replay's progress line on a terminal and enforces --max-wait.
type watch struct {
	fwd      *replay.Forwarder
	node     *node.Client
	reg      prometheus.Gatherer
	term     *replay.Terminal // nil: not a terminal, no progress line
	rate     float64          // --rate, for the ETA
	readAll  *atomic.Bool
	maxWait  time.Duration
	onGiveUp func(stalled time.Duration)

	expected atomic.Int64 // events counted ahead in the files (countEvents); 0 until known
	gaveUp   atomic.Bool
	quit     chan struct{}
	meter    replay.Meter
}

// watchTick is often enough for a live line and a --max-wait of seconds.
const watchTick = 250 * time.Millisecond

func (w *watch) start() <-chan struct{} {
	done := make(chan struct{})
	w.quit = make(chan struct{})
	if w.term == nil && w.maxWait == 0 {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(watchTick)
		defer t.Stop()
		for {
			select {
			case <-w.quit:
				return
			case now := <-t.C:
				w.tick(now)
			}
		}
	}()
	return done
}

func (w *watch) tick(now time.Time) {
	st := w.fwd.Stats()
	if w.maxWait > 0 && st.Stalled >= w.maxWait && w.gaveUp.CompareAndSwap(false, true) {
		if w.term != nil {
			w.term.Clear()
		}
		w.onGiveUp(st.Stalled)
		return
	}
	if w.term == nil || w.gaveUp.Load() {
		return
	}
	mfs := gather(w.reg) // once a tick: each read below is of this one snapshot
	parsed := int64(metricValue(mfs, "apigw_connector_parse_calls_total", "", ""))
	s := replay.Sample{
		Stats:    st,
		Total:    -1,
		Read:     parsed,
		Rate:     w.meter.Add(now, st.Sent),
		Expected: w.expected.Load(),
		Target:   w.rate,
		NodeUp:   w.node.Up(),
		Retries:  int64(metricValue(mfs, "apigw_connector_node_retries_total", "", "")),
		Buffered: int64(metricValue(mfs, "apigw_connector_pipeline_calls_buffered", "", "")),
	}
	if w.readAll.Load() {
		skipped := metricValue(mfs, "apigw_connector_pipeline_calls_total", "result", "filtered") +
			metricValue(mfs, "apigw_connector_pipeline_calls_total", "result", "duplicate")
		s.Total = parsed - int64(skipped)
	}
	w.term.Show(replay.Line(s))
}

// stop ends the watch, clears the line and reports whether --max-wait gave up.
func (w *watch) stop(done <-chan struct{}) bool {
	close(w.quit)
	<-done
	if w.term != nil {
		w.term.Clear()
	}
	return w.gaveUp.Load()
}

// gather is the registry's families, none when it cannot be read (every
// value then reads 0).
func gather(g prometheus.Gatherer) []*dto.MetricFamily {
	mfs, err := g.Gather()
	if err != nil {
		return nil
	}
	return mfs
}

// metricValue sums a counter's or gauge's series in mfs, those whose label
// has value when label is set.
func metricValue(mfs []*dto.MetricFamily, name, label, value string) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m.GetLabel(), label, value) {
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func hasLabel(lps []*dto.LabelPair, name, value string) bool {
	for _, lp := range lps {
		if lp.GetName() == name {
			return lp.GetValue() == value
		}
	}
	return false
}

// countEvents counts the log events in the named files ahead of a paced
// replay, so the progress line has a total and an ETA long before the
// replay has read its input (it reads ahead only a buffer's worth). An
// estimate: lines that are no API call and filtered calls count too.
func countEvents(ctx context.Context, names []string, dec *cwlogs.Decoder, opts file.Options) (int64, error) {
	opts.Log = nil // the replay itself reports damaged input
	var n int64
	count := func(b pipeline.Batch) error {
		for _, r := range b.Records {
			if b.Format == pipeline.FormatLines {
				n += countLines(r.Data)
				continue
			}
			n += int64(dec.DecodeEach(r.Data, func(*cwlogs.Meta, *cwlogs.Event) {}, nil).Events)
		}
		return ctx.Err()
	}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		_, err = file.Read(ctx, name, f, opts, count)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("count events in %s: %w", name, err)
		}
	}
	return n, nil
}

func countLines(b []byte) int64 {
	var n int64
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}
