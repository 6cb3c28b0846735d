package replay

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// Watch draws a replay's progress line on a terminal and enforces --max-wait,
// from the forwarder's stats and the replay's metrics, every tick.
type Watch struct {
	Forwarder *Forwarder
	Node      interface{ Up() bool } // the node client: up or down on the line
	Metrics   prometheus.Gatherer
	Term      *Terminal           // nil: not a terminal, no progress line
	Rate      float64             // --rate, for the ETA
	ReadAll   *atomic.Bool        // set once the input was read to its end: the total is known
	MaxWait   time.Duration       // 0: wait for the node however long
	OnGiveUp  func(time.Duration) // called once, with how long nothing settled, when MaxWait passed

	Expected atomic.Int64 // events counted ahead in the input (CountEvents); 0 until known

	gaveUp atomic.Bool
	quit   chan struct{}
	done   chan struct{}
	meter  Meter
}

// watchTick is often enough for a live line and a --max-wait of seconds.
const watchTick = 250 * time.Millisecond

// Start ticks in the background until Stop; without a terminal or a MaxWait
// there is nothing to do and no goroutine.
func (w *Watch) Start() {
	w.done = make(chan struct{})
	w.quit = make(chan struct{})
	if w.Term == nil && w.MaxWait == 0 {
		close(w.done)
		return
	}
	go func() {
		defer close(w.done)
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
}

func (w *Watch) tick(now time.Time) {
	st := w.Forwarder.Stats()
	if w.MaxWait > 0 && st.Stalled >= w.MaxWait && w.gaveUp.CompareAndSwap(false, true) {
		if w.Term != nil {
			w.Term.Clear()
		}
		w.OnGiveUp(st.Stalled)
		return
	}
	if w.Term == nil || w.gaveUp.Load() {
		return
	}
	m := telemetry.Read(w.Metrics) // once a tick: every figure below is of this one snapshot
	parsed := int64(m.Sum("apigw_connector_parse_calls_total", "", ""))
	s := Sample{
		Stats:    st,
		Total:    -1,
		Read:     parsed,
		Rate:     w.meter.Add(now, st.Sent),
		Expected: w.Expected.Load(),
		Target:   w.Rate,
		NodeUp:   w.Node.Up(),
		Retries:  int64(m.Sum("apigw_connector_node_retries_total", "", "")),
		Buffered: int64(m.Sum("apigw_connector_pipeline_calls_buffered", "", "")),
	}
	if w.ReadAll != nil && w.ReadAll.Load() {
		skipped := m.Sum("apigw_connector_pipeline_calls_total", "result", "filtered") +
			m.Sum("apigw_connector_pipeline_calls_total", "result", "duplicate")
		s.Total = parsed - int64(skipped)
	}
	w.Term.Show(Line(s))
}

// Stop ends the watch (if started), clears the line and reports whether
// MaxWait gave up.
func (w *Watch) Stop() bool {
	if w.quit != nil {
		close(w.quit)
		<-w.done
	}
	if w.Term != nil {
		w.Term.Clear()
	}
	return w.gaveUp.Load()
}
