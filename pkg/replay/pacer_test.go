package replay

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when slept on or told to, so pacing is measured
// exactly, without real sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		c.Advance(d)
	}
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// sendTimes paces calls logged at logTimes one after another and returns
// when each went out, relative to the first.
func sendTimes(t *testing.T, p *Pacer, c *fakeClock, logTimes []time.Time) []time.Duration {
	t.Helper()
	start := c.Now()
	out := make([]time.Duration, len(logTimes))
	for i, lt := range logTimes {
		if err := p.Wait(context.Background(), lt); err != nil {
			t.Fatal(err)
		}
		out[i] = c.Now().Sub(start)
	}
	return out
}

func within(got, want time.Duration, frac float64) bool {
	return math.Abs(float64(got-want)) <= frac*float64(want)
}

func everySecond(from time.Time, n int) []time.Time {
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = from.Add(time.Duration(i) * time.Second)
	}
	return ts
}

func TestRateHoldsWithinOnePercent(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0.5, 1, 7, 100, 2500} {
		t.Run(strings.ReplaceAll(formatRate(rate), ".", "_"), func(t *testing.T) {
			t.Parallel()
			c := newFakeClock()
			p := NewPacer(Options{Rate: rate, Clock: c})
			n := int(max(rate*20, 20))
			got := sendTimes(t, p, c, make([]time.Time, n))
			want := time.Duration(float64(n-1) / rate * float64(time.Second))
			if last := got[n-1]; !within(last, want, 0.01) {
				t.Fatalf("%d calls at --rate %v took %s, want %s ±1%%", n, rate, last, want)
			}
			gap := time.Duration(float64(time.Second) / rate)
			for i := 1; i < n; i++ {
				if d := got[i] - got[i-1]; d < gap*99/100 {
					t.Fatalf("calls %d and %d went %s apart, want %s: a burst", i-1, i, d, gap)
				}
			}
		})
	}
}

// After a stall longer than CatchUp (the node down), a rated replay resumes
// at its rate: at most CatchUp's worth of calls go out at once.
func TestRateDoesNotBurstAfterAStall(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	const rate = 50
	p := NewPacer(Options{Rate: rate, Clock: c})
	sendTimes(t, p, c, make([]time.Time, 10))
	c.Advance(10 * time.Minute)
	got := sendTimes(t, p, c, make([]time.Time, 500))
	atOnce := 0
	for _, d := range got {
		if d == 0 {
			atOnce++
		}
	}
	if limit := int(rate*CatchUp.Seconds()) + 1; atOnce > limit {
		t.Fatalf("%d calls went out at once after a stall, want at most %d", atOnce, limit)
	}
	want := time.Duration(float64(500-rate*CatchUp.Seconds()-1) / rate * float64(time.Second))
	if !within(got[499], want, 0.02) {
		t.Fatalf("500 calls after the stall took %s, want about %s", got[499], want)
	}
}

func TestSpeedCompressesTheLogsTiming(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	irregular := []time.Time{t0}
	for i := 1; i < 2000; i++ { // gaps of 0.1 s to 9.9 s
		irregular = append(irregular, irregular[i-1].Add(time.Duration(1+(i*37)%99)*100*time.Millisecond))
	}
	for _, tc := range []struct {
		name  string
		speed float64
		logs  []time.Time
	}{
		{"hour in a minute", 60, everySecond(t0, 3600)},
		{"real time", 1, everySecond(t0, 120)},
		{"irregular x10", 10, irregular},
		{"slower than the log", 0.5, everySecond(t0, 30)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClock()
			p := NewPacer(Options{Speed: tc.speed, Clock: c})
			got := sendTimes(t, p, c, tc.logs)
			for i, lt := range tc.logs {
				want := time.Duration(float64(lt.Sub(tc.logs[0])) / tc.speed)
				if !within(got[i], want, 0.01) {
					t.Fatalf("call %d (log +%s) went at +%s, want +%s ±1%%", i, lt.Sub(tc.logs[0]), got[i], want)
				}
			}
		})
	}
}

// Out-of-order log times neither stall the replay nor let it burst
// without bound: see the Pacer's documentation.
func TestSpeedWithOutOfOrderTimes(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	s := time.Second
	at := func(secs ...int) []time.Time {
		ts := make([]time.Time, len(secs))
		for i, v := range secs {
			ts[i] = t0.Add(time.Duration(v) * s)
		}
		return ts
	}
	for _, tc := range []struct {
		name string
		logs []time.Time
		want []time.Duration // send times at --speed 10
	}{
		// Interleaved streams: a call 20 s back goes with the latest call,
		// and the timeline is kept (100 s of log still takes 10 s).
		{"a little back", at(0, 50, 30, 100), []time.Duration{0, 5 * s, 5 * s, 10 * s}},
		// A second file over the same hour is paced again, not burst.
		{"a second file over the same span", at(0, 600, 1200, 0, 600, 1200),
			[]time.Duration{0, 60 * s, 120 * s, 120 * s, 180 * s, 240 * s}},
		// A bogus future time waits at most MaxStep; what follows it (far
		// back) starts a new timeline instead of waiting for the bogus one.
		{"a bogus future time", append(at(0, 10), t0.AddDate(10, 0, 0), t0.Add(20*s), t0.Add(30*s)),
			[]time.Duration{0, s, s + DefaultMaxStep, s + DefaultMaxStep, 2*s + DefaultMaxStep}},
		// A long quiet stretch: one wait of MaxStep, then the log's timing again.
		{"a quiet night", at(0, 10, 8*3600, 8*3600+10), []time.Duration{0, s, s + DefaultMaxStep, 2*s + DefaultMaxStep}},
		// Calls without a log time go at once and leave the timeline alone.
		{"no log time", append(at(0), time.Time{}, t0.Add(10*s)), []time.Duration{0, 0, s}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClock()
			p := NewPacer(Options{Speed: 10, Clock: c})
			got := sendTimes(t, p, c, tc.logs)
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("send times %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// A sender that falls far behind (a slow node) does not catch up in a burst.
func TestSpeedBehindShiftsTheTimeline(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	p := NewPacer(Options{Speed: 1, Clock: c})
	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	logs := everySecond(t0, 20)
	sendTimes(t, p, c, logs[:10])
	c.Advance(time.Minute) // the node was down
	got := sendTimes(t, p, c, logs[10:])
	if want := 9 * time.Second; got[9] != want {
		t.Fatalf("10 calls a second apart took %s after the stall, want %s", got[9], want)
	}
}

func TestPacerWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	p := NewPacer(Options{Rate: 0.001}) // the real clock: a slot every 1000 s
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	t.Cleanup(cancel)
	_ = p.Wait(ctx, time.Time{}) // the first slot is now
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx, time.Time{}) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Wait returned nil after its context ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after its context ended")
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o       Options
		wantErr string
	}{
		{Options{}, ""},
		{Options{Rate: 10}, ""},
		{Options{Speed: 60}, ""},
		{Options{Rate: 10, Speed: 60}, "mutually exclusive"},
		{Options{Rate: -1}, "--rate must be a positive"},
		{Options{Speed: -2}, "--speed must be a positive"},
		{Options{Speed: math.NaN()}, "--speed must be a positive"},
		{Options{Rate: math.Inf(1)}, "--rate must be a positive"},
		{Options{Rate: 1e7}, "above 1000000"},
	} {
		err := tc.o.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tc.o, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: error %v, want one containing %q", tc.o, err, tc.wantErr)
		}
	}
}

// Concurrent senders ask in any order: when a later call asks first, the
// calls logged before it must still be spread from the earliest one, not
// sent in a burst (the log's span is what reaches the node). Measured on a
// replay under load: 16 calls asked late shortened 2 s to 1.6 s.
func TestSpeedAnchorsAtTheEarliestCallNotTheFirstToAsk(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	p := NewPacer(Options{Speed: 120, Clock: c})
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	logTimes := make([]time.Time, 81) // every 3 s: 4 minutes of log, 2 s at 120x
	for i := range logTimes {
		logTimes[i] = start.Add(time.Duration(i) * 3 * time.Second)
	}
	// Call 16 asks first, then 0..15 (all earlier: they go at once), then the rest in order.
	order := append([]time.Time{logTimes[16]}, logTimes[:16]...)
	order = append(order, logTimes[17:]...)
	got := sendTimes(t, p, c, order)
	if last, want := got[len(got)-1], 2*time.Second; !within(last, want, 0.01) {
		t.Errorf("the last call went out %s after the first, want %s: the timeline was anchored at the first call to ask", last, want)
	}
	for i := 1; i <= 16; i++ {
		if got[i] != 0 {
			t.Errorf("call %d, logged before the first to ask, waited %s, want 0 (it goes with the latest)", i-1, got[i])
		}
	}
}
