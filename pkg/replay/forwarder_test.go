package replay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// stubForwarder delivers at once, or blocks until its context ends when
// block is set (a node that does not answer).
type stubForwarder struct {
	block     bool
	reject    bool
	delivered atomic.Int64
	entered   chan struct{}
}

func (s *stubForwarder) Deliver(ctx context.Context, _ *accesslog.APICall) error {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.reject {
		return errors.New("400 bad request")
	}
	s.delivered.Add(1)
	return nil
}

func (s *stubForwarder) Filter(c *accesslog.APICall) bool { return c.Host != "filtered.example" }

func TestForwarderCountsAndPassesTheFilterThrough(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		reject       bool
		wantRejected int64
	}{{"delivered", false, 0}, {"rejected", true, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			next := &stubForwarder{reject: tc.reject}
			f := NewForwarder(next, nil, newFakeClock())
			for range 3 {
				err := f.Deliver(context.Background(), &accesslog.APICall{})
				if (err != nil) != tc.reject {
					t.Fatalf("Deliver: %v", err)
				}
			}
			if st := f.Stats(); st.Sent != 3 || st.Rejected != tc.wantRejected || st.Sending != 0 || st.Stalled != 0 {
				t.Fatalf("stats %+v", st)
			}
			if f.Filter(&accesslog.APICall{Host: "filtered.example"}) || !f.Filter(&accesslog.APICall{Host: "a.example"}) {
				t.Fatal("the wrapped forwarder's filter is not passed through")
			}
		})
	}
}

// After Stop, calls not yet admitted are not sent and end as abandoned
// (their context's error), and Stop's channel closes once the calls being
// sent have returned.
func TestForwarderStopAdmitsNothingMore(t *testing.T) {
	t.Parallel()
	next := &stubForwarder{block: true, entered: make(chan struct{}, 1)}
	f := NewForwarder(next, nil, newFakeClock())
	sendCtx, cancelSend := context.WithCancel(context.Background())
	t.Cleanup(cancelSend)
	first := make(chan error, 1)
	go func() { first <- f.Deliver(sendCtx, &accesslog.APICall{}) }()
	<-next.entered
	drained := f.Stop()
	laterCtx, cancelLater := context.WithCancel(context.Background())
	later := make(chan error, 1)
	go func() { later <- f.Deliver(laterCtx, &accesslog.APICall{}) }()
	select {
	case <-drained:
		t.Fatal("drained while a call was being sent")
	case <-next.entered:
		t.Fatal("a call was sent after Stop")
	case <-time.After(50 * time.Millisecond):
	}
	cancelLater()
	if err := waitErr(t, later); !errors.Is(err, context.Canceled) {
		t.Fatalf("call after Stop: %v, want its context's error", err)
	}
	cancelSend()
	waitErr(t, first)
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("not drained after the last send returned")
	}
	if st := f.Stats(); st.Sent != 0 {
		t.Fatalf("%d calls counted sent, want 0: none was delivered", st.Sent)
	}
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver did not return")
		return nil
	}
}

// Stalled measures from the send that waits: time spent in the pacer or
// between calls is no stall.
func TestForwarderStalledCountsFromTheWaitingSend(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	next := &stubForwarder{block: true, entered: make(chan struct{}, 1)}
	f := NewForwarder(next, nil, c)
	c.Advance(time.Hour) // idle: no stall
	if st := f.Stats(); st.Stalled != 0 {
		t.Fatalf("idle forwarder stalled %s", st.Stalled)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Deliver(ctx, &accesslog.APICall{}) }()
	<-next.entered
	c.Advance(30 * time.Second)
	if st := f.Stats(); st.Stalled != 30*time.Second || st.Sending != 1 {
		t.Fatalf("stats %+v, want 30s stalled with one call sending", st)
	}
	cancel()
	waitErr(t, done)
}

func TestForwarderWarnsOnceOfALongSpan(t *testing.T) {
	t.Parallel()
	var warned []time.Duration
	f := NewForwarder(&stubForwarder{}, nil, newFakeClock())
	f.SpanLimit = 10 * time.Minute
	f.SpanWarn = func(d time.Duration) { warned = append(warned, d) }
	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	for _, c := range []accesslog.APICall{
		{RequestTime: t0.Add(5 * time.Minute)},
		{LogTime: t0},                           // no request time: the event timestamp
		{RequestTime: t0.Add(10 * time.Minute)}, // exactly the limit: no warning yet
		{RequestTime: t0.Add(11 * time.Minute)},
		{RequestTime: t0.Add(time.Hour)},
	} {
		if err := f.Deliver(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
	}
	if len(warned) != 1 || warned[0] != 11*time.Minute {
		t.Fatalf("warnings %v, want one at 11m", warned)
	}
	if st := f.Stats(); !st.First.Equal(t0) || !st.Last.Equal(t0.Add(time.Hour)) {
		t.Fatalf("span %s..%s", st.First, st.Last)
	}
}

// A paced forwarder sends at the pacer's slots.
func TestForwarderPaces(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	next := &stubForwarder{}
	f := NewForwarder(next, NewPacer(Options{Rate: 20, Clock: c}), c)
	start := c.Now()
	for range 201 {
		if err := f.Deliver(context.Background(), &accesslog.APICall{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Now().Sub(start); got != 10*time.Second || next.delivered.Load() != 201 {
		t.Fatalf("201 calls at 20/s took %s (%d delivered), want 10s", got, next.delivered.Load())
	}
}
