package inventory

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func TestTimeline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		tl    Timeline
		at    []time.Duration // call times after t0, in arrival order
		now   time.Duration
		start time.Duration
		step  time.Duration
		want  []int64
	}{
		{name: "file: one bucket", tl: FileTimeline, at: []time.Duration{0, 0},
			step: time.Second, want: []int64{2}},
		{name: "file: the step grows to span every call", tl: FileTimeline,
			at: []time.Duration{0, 30 * time.Second, 3 * time.Hour}, step: 5 * time.Minute,
			want: append(append([]int64{2}, make([]int64, 35)...), 1)},
		{name: "file: an earlier call arriving later", tl: Timeline{Step: time.Second, Buckets: 30},
			at: []time.Duration{2 * time.Minute, 0, time.Minute}, step: 5 * time.Second,
			want: func() []int64 { c := make([]int64, 25); c[0], c[12], c[24] = 1, 1, 1; return c }()},
		{name: "live: older steps slide out", tl: Timeline{Step: 10 * time.Second, Buckets: 6, Sliding: true},
			at:  []time.Duration{0, 10 * time.Second, 70 * time.Second, 5 * time.Second, 65 * time.Second},
			now: 70 * time.Second, start: 20 * time.Second, step: 10 * time.Second, want: []int64{0, 0, 0, 0, 1, 1}},
		{name: "live: idle, the view still slides to now", tl: Timeline{Step: 10 * time.Second, Buckets: 6, Sliding: true},
			at:  []time.Duration{0, 10 * time.Second, 70 * time.Second},
			now: 100 * time.Second, start: 50 * time.Second, step: 10 * time.Second, want: []int64{0, 0, 1, 0, 0, 0}},
		{name: "live: a young grid shows the steps since its first call", tl: Timeline{Step: 10 * time.Second, Buckets: 6, Sliding: true},
			at:  []time.Duration{0, 10 * time.Second},
			now: 20 * time.Second, start: 0, step: 10 * time.Second, want: []int64{1, 1, 0}},
		{name: "live: clock stepped back, the view ends with the grid", tl: Timeline{Step: 10 * time.Second, Buckets: 3, Sliding: true},
			at:  []time.Duration{0, 20 * time.Second},
			now: -time.Hour, start: 0, step: 10 * time.Second, want: []int64{1, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv := NewWithTimeline(tc.tl)
			for _, d := range tc.at {
				inv.Add("h", "GET", "/", 200, t0.Add(d))
			}
			eps := inv.SnapshotAt(t0.Add(tc.now))
			if len(eps) != 1 || eps[0].Calls != int64(len(tc.at)) {
				t.Fatalf("endpoints %+v, want one with %d calls", eps, len(tc.at))
			}
			s := eps[0].Series
			if s == nil || !s.Start.Equal(t0.Add(tc.start)) || s.Step != tc.step || !slices.Equal(s.Counts, tc.want) {
				t.Fatalf("series %+v\nwant start %v step %v counts %v", s, t0.Add(tc.start), tc.step, tc.want)
			}
		})
	}
}

// However the calls spread, an endpoint keeps at most Buckets counts, and a
// spanning timeline loses none of them; endpoints share one grid.
func TestTimelineBoundedAndShared(t *testing.T) {
	t.Parallel()
	inv := New()
	r := rand.New(rand.NewPCG(1, 2))
	const n = 10000
	for i := range n {
		at := t0.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
		inv.Add("h", []string{"GET", "POST"}[i%2], "/", 200, at)
	}
	eps := inv.Snapshot()
	var total int64
	for _, e := range eps {
		if len(e.Series.Counts) > FileTimeline.Buckets {
			t.Errorf("%s: %d counts, more than %d", e.Method, len(e.Series.Counts), FileTimeline.Buckets)
		}
		for _, c := range e.Series.Counts {
			total += c
		}
	}
	if total != n {
		t.Errorf("series hold %d calls, want %d", total, n)
	}
	if a, b := eps[0].Series, eps[1].Series; !a.Start.Equal(b.Start) || a.Step != b.Step || len(a.Counts) != len(b.Counts) {
		t.Errorf("endpoints on different grids: %v/%v/%d and %v/%v/%d", a.Start, a.Step, len(a.Counts), b.Start, b.Step, len(b.Counts))
	}
}

func TestStepLabel(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		10 * time.Second: "10 s", 5 * time.Minute: "5 min", 3 * time.Hour: "3 h", 7 * 24 * time.Hour: "7 d",
		90 * time.Second: "90 s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := StepLabel(d); got != want {
			t.Errorf("StepLabel(%v) = %q, want %q", d, got, want)
		}
	}
}
