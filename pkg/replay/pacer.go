// Package replay paces, watches and reports a replay of exported access logs
// (the `replay` command): API Discovery judges an endpoint by requests spread
// over time as the node receives them, so a backfill must not arrive in one
// burst.
package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Clock is the time source of a Pacer, injectable so pacing is tested
// without real sleeps.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx ends (then returning ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx ends.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Defaults of the out-of-order handling of --speed, in log time and wall time.
const (
	// DefaultRebase: a call more than this much (log time) earlier than the
	// latest call seen starts a new timeline (the next file, another stream
	// exported apart) instead of going out at once with everything like it.
	DefaultRebase = time.Minute
	// DefaultMaxStep caps one wait (wall time) of --speed: a long quiet
	// stretch of the log or a bogus future timestamp cannot hold a replay
	// for hours.
	DefaultMaxStep = time.Minute
	// CatchUp is how far behind its slots a pacer may fall and still catch
	// up: timer and scheduling jitter then cost no accuracy, while a longer
	// stall (the node down) resumes at the set pace, never in a burst of
	// more than CatchUp's worth of calls.
	CatchUp = time.Second
)

// Options choose the pacing: Rate (calls per second) or Speed (the log's
// own timing compressed Speed times); both zero means unpaced.
type Options struct {
	Rate    float64
	Speed   float64
	Rebase  time.Duration // log time; 0 means DefaultRebase
	MaxStep time.Duration // wall time; 0 means DefaultMaxStep
	Clock   Clock         // nil means RealClock
}

// Validate reports a mistake in the flags, naming them.
func (o Options) Validate() error {
	switch {
	case o.Rate != 0 && o.Speed != 0:
		return errors.New("--rate and --speed are mutually exclusive: --rate sends a fixed number of calls per second, --speed follows the log's own timing")
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("--rate must be a positive number of calls per second, got %v", o.Rate)
	case o.Speed < 0 || math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0):
		return fmt.Errorf("--speed must be a positive factor (60 sends an hour of log in a minute), got %v", o.Speed)
	case o.Rate > 1e6:
		return fmt.Errorf("--rate %v is above 1000000 calls per second: leave it out for an unpaced replay", o.Rate)
	}
	return nil
}

// Paced reports whether the options pace at all.
func (o Options) Paced() bool { return o.Rate > 0 || o.Speed > 0 }

// Pacer hands out send times. Safe for concurrent use: calls reserve their
// slots in the order they ask.
//
// --rate: slots are 1/Rate apart. A sender at most CatchUp behind catches up;
// after a longer stall (the node down, a slow input) sending resumes at Rate,
// not in a catch-up burst.
//
// --speed: a call goes out at base + (t - t0)/Speed, where t is its log time
// and (t0, base) the timeline's earliest log time and the first send's time
// (the earliest call need not ask first: senders are concurrent). Log time only moves
// forward: a call up to Rebase earlier than the latest one seen (streams
// interleaved in an export) goes out at once, as if logged with it; a call
// further back starts a new timeline at now, so a second file covering the
// same hours is paced again rather than burst. One wait is at most MaxStep:
// after a longer gap the timeline restarts at the next call. A call without a
// log time goes out at once. A sender more than CatchUp behind its slots is
// not caught up: the timeline shifts, so the spread is kept.
type Pacer struct {
	o     Options
	clock Clock

	mu      sync.Mutex
	next    time.Time // --rate: the next free slot
	started bool      // --speed: a timeline exists
	t0      time.Time // --speed: log time at base
	base    time.Time // --speed: wall time of t0
	latest  time.Time // --speed: latest log time seen (the cursor)
}

// NewPacer returns a pacer for validated options.
func NewPacer(o Options) *Pacer {
	if o.Rebase <= 0 {
		o.Rebase = DefaultRebase
	}
	if o.MaxStep <= 0 {
		o.MaxStep = DefaultMaxStep
	}
	c := o.Clock
	if c == nil {
		c = RealClock{}
	}
	return &Pacer{o: o, clock: c}
}

// Reserve takes the slot of a call logged at logTime and returns how long
// to wait for it (0: send now).
func (p *Pacer) Reserve(logTime time.Time) time.Duration {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.o.Rate > 0:
		at := p.next
		if at.IsZero() {
			at = now // the first call
		} else if floor := now.Add(-CatchUp); at.Before(floor) {
			at = floor // bank at most CatchUp of credit
		}
		p.next = at.Add(time.Duration(float64(time.Second) / p.o.Rate))
		return at.Sub(now)
	case p.o.Speed > 0:
		return p.speed(now, logTime)
	}
	return 0
}

func (p *Pacer) speed(now, t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	if !p.started || t.Before(p.latest.Add(-p.o.Rebase)) {
		p.restart(now, t)
		return 0
	}
	if !t.After(p.latest) {
		if t.Before(p.t0) {
			// Earlier than the timeline's origin: the origin was a call that
			// merely asked first (the senders run concurrently). Anchor the
			// timeline at the earliest call, or the calls between the two
			// would all go out in one burst at the start.
			p.t0 = t
		}
		return 0 // a little out of order: with the latest call
	}
	p.latest = t
	at := p.base.Add(time.Duration(float64(t.Sub(p.t0)) / p.o.Speed))
	wait := at.Sub(now)
	switch {
	case wait > p.o.MaxStep:
		// A gap too long to wait out: wait MaxStep and continue from there.
		p.restart(now.Add(p.o.MaxStep), t)
		return p.o.MaxStep
	case wait < -CatchUp:
		// Far behind (slow node, slow input): shift the timeline rather than burst.
		p.restart(now, t)
		return 0
	}
	return max(wait, 0)
}

func (p *Pacer) restart(base, t time.Time) {
	p.started, p.t0, p.base, p.latest = true, t, base, t
}

// Wait reserves the call's slot and sleeps until it.
func (p *Pacer) Wait(ctx context.Context, logTime time.Time) error {
	return p.clock.Sleep(ctx, p.Reserve(logTime))
}
