package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// NewLogger builds the process logger: JSON or text on w, rate-limited repeats.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	lvl, err := ParseLevel(c.Level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: ReplaceAttr}
	var h slog.Handler
	if strings.EqualFold(c.Format, "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	if c.RepeatInterval > 0 {
		h = NewRateLimitHandler(h, c.RepeatInterval, time.Now)
	}
	return slog.New(h)
}

// ReplaceAttr writes every time.Duration as a short string ("4.01s"): the
// JSON handler would write raw nanoseconds (4012740337), which no reader
// parses at a glance. Three significant digits are plenty for a log line.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(ShortDuration(a.Value.Duration()))
	}
	return a
}

// ShortDuration is d rounded to three significant digits, as Go writes it.
func ShortDuration(d time.Duration) string {
	unit := time.Duration(1)
	for abs := max(d, -d); abs >= 1000*unit && unit < time.Second; unit *= 10 {
	}
	return d.Round(unit).String()
}

// EventKey marks a record as a state change (a lease taken, lost, released
// or handed off): rare, and each one matters to whoever reconstructs what
// happened, so the rate limiter never drops it whatever its level. Packages
// that must not import telemetry (pkg/lease) use the same literal key.
const EventKey = "event"

// RateLimitHandler writes a given (level, message) at most once per interval.
// Bad input can arrive thousands of times a second; logging each one would
// drown the useful lines and cost more CPU than processing. The first
// occurrence is written with its full context; later ones within the interval
// are counted and reported as "suppressed" on the next one written. Records
// with an EventKey attribute are always written.
type RateLimitHandler struct {
	next     slog.Handler
	interval time.Duration
	now      func() time.Time
	state    *rateState
}

type rateState struct {
	mu   sync.Mutex
	seen map[rateKey]*rateEntry
}

type rateKey struct {
	level slog.Level
	msg   string
}

type rateEntry struct {
	last       time.Time
	suppressed int
}

// NewRateLimitHandler wraps next.
func NewRateLimitHandler(next slog.Handler, interval time.Duration, now func() time.Time) *RateLimitHandler {
	return &RateLimitHandler{next: next, interval: interval, now: now, state: &rateState{seen: map[rateKey]*rateEntry{}}}
}

// Enabled implements slog.Handler.
func (h *RateLimitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *RateLimitHandler) Handle(ctx context.Context, r slog.Record) error {
	// Info and below are lifecycle lines, events are state changes: never suppressed.
	if r.Level < slog.LevelWarn || isEvent(r) {
		return h.next.Handle(ctx, r)
	}
	k := rateKey{r.Level, r.Message}
	now := h.now()
	h.state.mu.Lock()
	e := h.state.seen[k]
	if e == nil {
		if len(h.state.seen) > 10000 { // bound memory against messages with variable text
			clear(h.state.seen)
		}
		e = &rateEntry{}
		h.state.seen[k] = e
	} else if now.Sub(e.last) < h.interval {
		e.suppressed++
		h.state.mu.Unlock()
		return nil
	}
	suppressed := e.suppressed
	e.suppressed = 0
	e.last = now
	h.state.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

func isEvent(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == EventKey
		return !found
	})
	return found
}

// WithAttrs implements slog.Handler; derived handlers share the rate state.
func (h *RateLimitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &RateLimitHandler{next: h.next.WithAttrs(as), interval: h.interval, now: h.now, state: h.state}
}

// WithGroup implements slog.Handler.
func (h *RateLimitHandler) WithGroup(name string) slog.Handler {
	return &RateLimitHandler{next: h.next.WithGroup(name), interval: h.interval, now: h.now, state: h.state}
}
