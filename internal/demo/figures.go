package demo

import (
	"fmt"
	"strings"
	"time"
)

// legend says once what every figure of the progress lines and the report
// counts, so no number needs guessing.
const legend = `progress: [t] = time since the traffic started;
  generated     = calls put on the stream (generate reports every 250ms, so it is shown as at least the calls delivered: each was generated first);
  delivered     = distinct generated calls the node stand-in completed (request and response message);
  redelivered   = extra deliveries of calls the node already had, refused by it as duplicates: after a lease moves, the new owner resends from
                  the last checkpoint (at-least-once); the connector counts them as delivered, already held;
  per worker    = leases held, Kinesis lag (millis behind latest), deliveries the node accepted or already held (redeliveries included)`

// progressFigures is one progress line's input.
type progressFigures struct {
	elapsed     time.Duration // since the traffic started
	phase       string
	generated   int64 // as generate last reported it
	delivered   int64 // distinct calls completed at the node
	redelivered int64 // request messages refused as duplicates
	workers     []workerFigures
}

type workerFigures struct {
	id string
	v  workerView
}

// progressLine renders a progress line. generated is shown as at least
// delivered: generate's count is up to 250 ms old, but no call can be
// delivered before it was generated.
func progressLine(f progressFigures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%5.1fs] %-8s generated %6d | delivered %6d | redelivered %d |",
		f.elapsed.Seconds(), f.phase, max(f.generated, f.delivered), f.delivered, f.redelivered)
	for _, w := range f.workers {
		if !w.v.ok {
			fmt.Fprintf(&b, " %s: no metrics |", w.id)
			continue
		}
		fmt.Fprintf(&b, " %s: %d leases, lag %s, %d deliveries |", w.id, w.v.leases, fmtMillis(w.v.lagMillis), int64(w.v.delivered))
	}
	return strings.TrimSuffix(b.String(), " |")
}

// workerLine is a worker's share in the report. Its deliveries include the
// redeliveries the node already held (it refuses them as duplicates, and
// the connector counts them as delivered); rejected are calls refused for
// good, which a healthy run has none of.
func workerLine(w WorkerResult) string {
	return fmt.Sprintf("%s: %d leases at the end, %d deliveries accepted by the node, %d of them redeliveries it already held; %d rejected for good",
		w.ID, w.Leases, w.Delivered, w.AlreadyHeld, w.Rejected)
}

// verdictLine is the report's last word on delivery.
func verdictLine(r *Result) string {
	if r.Missing > 0 {
		return fmt.Sprintf("CALLS LOST: %d of %d generated calls never reached the node", r.Missing, r.Generated)
	}
	return fmt.Sprintf("no call lost: %d/%d generated calls delivered, %d redeliveries after lease moves refused by the node as duplicates (counted once in the inventory)",
		r.Delivered, r.Generated, r.Duplicates)
}
