package replay

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sample is what one progress line tells.
type Sample struct {
	Stats
	Total int64 // calls to send (parsed, not filtered or duplicate); -1 until the input is read to its end
	Read  int64 // calls parsed so far
	// Expected estimates Total before the input is read to its end: the log
	// events counted ahead in the files; 0 when not counted.
	Expected int64
	Rate     float64 // calls/s over the last few seconds
	Target   float64 // --rate, for the ETA; 0 when not set
	NodeUp   bool
	Retries  int64 // node retries so far
	Buffered int64 // calls parsed and waiting for a forwarding slot
}

// Line renders a sample as one plain line, e.g.
// "replay: 1200 of 5000 sent · 100 calls/s · ETA 38s", or, while the node
// does not answer, "replay: 1200 sent · node down · 80 calls waiting · 12 retries · no progress for 14s".
// The ETA appears once the total is known (the input read to its end), or
// marked "~" when it is estimated from the events counted ahead (Expected):
// otherwise the count of calls still to come is unknown, and a guess would
// mislead.
func Line(s Sample) string {
	var b strings.Builder
	b.WriteString("replay: ")
	b.WriteString(strconv.FormatInt(s.Sent, 10))
	switch {
	case s.Total >= 0:
		fmt.Fprintf(&b, " of %d", s.Total)
	case s.Expected > 0:
		fmt.Fprintf(&b, " of ~%d", s.Expected)
	}
	b.WriteString(" sent")
	if s.Rejected > 0 {
		fmt.Fprintf(&b, " (%d rejected)", s.Rejected)
	}
	down := !s.NodeUp || s.Stalled >= 5*time.Second
	if down {
		state := "node down"
		if s.NodeUp {
			state = "node not answering"
		}
		fmt.Fprintf(&b, " · %s · %d calls waiting · %d retries", state, int64(s.Sending)+s.Buffered, s.Retries)
		if s.Stalled > 0 {
			fmt.Fprintf(&b, " · no progress for %s", s.Stalled.Round(time.Second))
		}
		return b.String()
	}
	if s.Rate > 0 || s.Sent == 0 { // no rate before the meter has two samples
		fmt.Fprintf(&b, " · %s calls/s", formatRate(s.Rate))
	}
	total, approx := s.Total, ""
	if total < 0 {
		if s.Expected <= 0 {
			fmt.Fprintf(&b, " · %d read, ETA when the input is read", s.Read)
			return b.String()
		}
		total, approx = s.Expected, "~"
	}
	rate := s.Rate
	if s.Target > 0 {
		rate = s.Target
	}
	if left := total - s.Sent; left > 0 && rate > 0 {
		fmt.Fprintf(&b, " · ETA %s%s", approx, formatETA(time.Duration(float64(left)/rate*float64(time.Second))))
	}
	return b.String()
}

func formatRate(r float64) string {
	if r < 10 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 0, 64)
}

func formatETA(d time.Duration) string {
	if d < time.Minute { // rounded up: "0s" while calls are left would be untrue
		return (d + time.Second - 1).Truncate(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// Meter turns counts at times into a recent rate (calls/s over Window).
type Meter struct {
	Window  time.Duration
	samples []meterSample
}

type meterSample struct {
	at time.Time
	n  int64
}

// Add records the count n at time at and returns the rate over the window.
func (m *Meter) Add(at time.Time, n int64) float64 {
	m.samples = append(m.samples, meterSample{at, n})
	w := m.Window
	if w <= 0 {
		w = 5 * time.Second
	}
	i := 0
	for i < len(m.samples)-2 && at.Sub(m.samples[i+1].at) >= w {
		i++
	}
	m.samples = m.samples[i:]
	first := m.samples[0]
	if d := at.Sub(first.at).Seconds(); d > 0 {
		return float64(n-first.n) / d
	}
	return 0
}

// Terminal rewrites one progress line in place on a terminal.
type Terminal struct {
	mu    sync.Mutex
	w     io.Writer
	shown bool
}

// NewTerminal writes to w, which must be a terminal.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

// Show replaces the line.
func (t *Terminal) Show(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "\r%s\x1b[K", line)
	t.shown = true
}

// Clear removes the line, before the summary or a message.
func (t *Terminal) Clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shown {
		fmt.Fprint(t.w, "\r\x1b[K")
		t.shown = false
	}
}

// Writer returns w behind the terminal's line: a write (a log line) first
// clears the progress line, so the two never share a line.
func (t *Terminal) Writer(w io.Writer) io.Writer { return clearingWriter{t, w} }

type clearingWriter struct {
	t *Terminal
	w io.Writer
}

func (c clearingWriter) Write(p []byte) (int, error) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.t.shown {
		fmt.Fprint(c.t.w, "\r\x1b[K")
		c.t.shown = false
	}
	return c.w.Write(p)
}
