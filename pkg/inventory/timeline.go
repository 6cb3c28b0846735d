package inventory

import (
	"strconv"
	"time"
)

// Timeline sets how calls over time are kept per endpoint: Buckets counts,
// each Step wide, on a grid shared by all endpoints (so views line up).
// Memory is fixed per endpoint whatever the traffic.
type Timeline struct {
	Step    time.Duration
	Buckets int
	// Sliding keeps the last Buckets steps up to now, dropping older counts:
	// a live view (devnode). Otherwise the step grows as needed to span every
	// call seen: the view of a log file, whose calls may cover days.
	Sliding bool
}

// LiveTimeline is devnode's: the last 10 minutes in 10 s steps.
var LiveTimeline = Timeline{Step: 10 * time.Second, Buckets: 60, Sliding: true}

// FileTimeline is the inventory command's: any span, at most 60 steps.
var FileTimeline = Timeline{Step: time.Second, Buckets: 60}

// Series is one endpoint's calls per step from Start.
type Series struct {
	Start  time.Time     `json:"start"`
	Step   time.Duration `json:"step_ns"`
	Counts []int64       `json:"counts"`
}

// steps is the ladder a spanning timeline climbs: each a multiple of the one
// before, so coarsening merges whole buckets and stays exact.
var steps = []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour,
	6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

func nextStep(d time.Duration) time.Duration {
	for _, s := range steps {
		if s > d && s%d == 0 {
			return s
		}
	}
	return 2 * d
}

// grid is the shared bucket grid: bucket b covers [b*step, (b+1)*step) in
// Unix nanoseconds; endpoints hold counts for buckets first..first+n-1.
type grid struct {
	tl       Timeline
	step     int64
	first    int64
	used     bool  // any call placed yet
	min, max int64 // the first and last buckets placed (sliding: ever)
}

func newGrid(tl Timeline) grid {
	if tl.Step <= 0 {
		tl.Step = FileTimeline.Step
	}
	if tl.Buckets <= 0 {
		tl.Buckets = FileTimeline.Buckets
	}
	return grid{tl: tl, step: int64(tl.Step)}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// place returns the index of at in the endpoints' counts, first moving or
// coarsening the grid, and with it every endpoint's counts (each visits them
// all), so that at fits; ok is false when a sliding grid has passed at.
func (g *grid) place(at time.Time, each func(func([]int64))) (int, bool) {
	n := int64(g.tl.Buckets)
	b := floorDiv(at.UnixNano(), g.step)
	if !g.used {
		g.used = true
		g.first, g.min, g.max = b, b, b
		if g.tl.Sliding {
			g.first = b - n + 1
		}
		return int(b - g.first), true
	}
	if g.tl.Sliding {
		if b < g.first {
			return 0, false
		}
		if b >= g.first+n {
			shift := b - n + 1 - g.first
			each(func(c []int64) { shiftCounts(c, shift) })
			g.first += shift
		}
		g.max = max(g.max, b)
		return int(b - g.first), true
	}
	for {
		lo, hi := min(g.min, b), max(g.max, b)
		if hi-lo < n {
			if lo < g.first || hi >= g.first+n {
				shift := lo - g.first
				each(func(c []int64) { shiftCounts(c, shift) })
				g.first = lo
			}
			g.min, g.max = lo, hi
			return int(b - g.first), true
		}
		// Too wide for n buckets: coarsen, every old bucket falling in
		// exactly one new one.
		ns := int64(nextStep(time.Duration(g.step)))
		f, first := ns/g.step, g.first
		each(func(c []int64) { coarsenCounts(c, first, f) })
		g.step, g.first = ns, floorDiv(first, f)
		g.min, g.max = floorDiv(g.min, f), floorDiv(g.max, f)
		b = floorDiv(at.UnixNano(), g.step)
	}
}

// shiftCounts moves counts so index 0 is shift buckets later (earlier when
// negative), dropping what falls off.
func shiftCounts(c []int64, shift int64) {
	n := int64(len(c))
	switch {
	case shift >= n || -shift >= n:
		clear(c)
	case shift > 0:
		copy(c, c[shift:])
		clear(c[n-shift:])
	case shift < 0:
		copy(c[-shift:], c[:n+shift])
		clear(c[:-shift])
	}
}

// coarsenCounts merges counts whose first bucket is first into buckets f
// times wider, the first of them floor(first/f).
func coarsenCounts(c []int64, first, f int64) {
	nf := floorDiv(first, f)
	out := make([]int64, len(c))
	for i, v := range c {
		if v != 0 {
			out[floorDiv(first+int64(i), f)-nf] += v
		}
	}
	copy(c, out)
}

// series cuts counts to what a view shows: for a sliding grid the steps up
// to now (or to its newest call, should the clock have stepped back), at
// most Buckets of them and none before the first call; for a spanning one
// the buckets holding calls.
func (g *grid) series(c []int64, now time.Time) *Series {
	if !g.used || c == nil {
		return nil
	}
	lo, hi := g.min, g.max
	if g.tl.Sliding {
		n := int64(len(c))
		hi = max(floorDiv(now.UnixNano(), g.step), g.max)
		lo = max(hi-n+1, g.min, g.first)
	}
	out := make([]int64, hi-lo+1)
	for b := lo; b <= hi; b++ {
		if i := b - g.first; i >= 0 && i < int64(len(c)) {
			out[b-lo] = c[i]
		}
	}
	return &Series{Start: time.Unix(0, lo*g.step).UTC(), Step: time.Duration(g.step), Counts: out}
}

// StepLabel names a step for a reader: "10 s", "5 min", "3 h", "1 d".
func StepLabel(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + " d"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	case d >= time.Second && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	}
	return d.String()
}
