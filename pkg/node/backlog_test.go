package node

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// After an outage the calls waiting out their backoff (up to max_backoff,
// 10 s) are woken by the first success: the backlog drains within about a
// second of the node's return, not in a tail as long as max_backoff, and the
// woken retries are spread (jitter), not sent in one instant.
func TestBacklogDrainsSoonAfterTheNodeReturns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		down func(w http.ResponseWriter)
	}{
		{"503", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"hang up", func(w http.ResponseWriter) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				down   atomic.Bool
				mu     sync.Mutex
				upAt   time.Time
				after  []time.Duration // arrival of each message after the return
				calls  = 32
				outage = 3 * time.Second
			)
			down.Store(true)
			srv := newRecordingServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if down.Load() {
					tt.down(w)
					return
				}
				mu.Lock()
				after = append(after, time.Since(upAt))
				mu.Unlock()
			})
			c, _ := testClient(t, srv.URL, func(c *Config) {
				c.Concurrency = calls
				c.Retry = RetryConfig{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, Multiplier: 2}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done := make(chan time.Time, calls)
			for i := range calls {
				go func() {
					call := sampleCall()
					call.NodeID = "backlog-" + strconv.Itoa(i)
					if err := c.Deliver(ctx, call); err != nil {
						t.Errorf("Deliver: %v", err)
					}
					done <- time.Now()
				}()
			}
			time.Sleep(outage) // backoffs grow towards max_backoff
			mu.Lock()
			upAt = time.Now()
			mu.Unlock()
			down.Store(false)
			var last time.Time
			for range calls {
				last = <-done
			}
			if tail := last.Sub(upAt); tail > 2*time.Second {
				t.Errorf("backlog drained %v after the node returned, want within about a second", tail.Round(time.Millisecond))
			}
			mu.Lock()
			defer mu.Unlock()
			// Request messages of the woken calls: spread over the wake window.
			first := slices.Clone(after[:calls])
			slices.Sort(first)
			if span := first[len(first)-1] - first[1]; span < 20*time.Millisecond {
				t.Errorf("woken retries arrived within %v of each other, want them spread (jitter)", span)
			}
		})
	}
}

// A wait the node asked for (Retry-After) is not cut short by another call's success.
func TestRetryAfterWaitIsNotWoken(t *testing.T) {
	t.Parallel()
	srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 { // call "slow": asked to wait
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	c, _ := testClient(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	slow := make(chan error, 1)
	go func() {
		call := sampleCall()
		call.NodeID = "slow"
		slow <- c.Deliver(ctx, call)
	}()
	for len(srv.recorded()) == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := c.Deliver(ctx, sampleCall()); err != nil { // succeeds while "slow" waits
		t.Fatal(err)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("the Retry-After wait ended after %v, want about 1s", d)
	}
}

// An outage with many calls waiting is one warning per reason and one line when
// the node answers again, not a warning per call and attempt.
func TestOutageIsLoggedOnceNotPerCall(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	srv := newRecordingServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	c, _, logs := logClient(t, srv.URL, func(c *Config) { c.Concurrency = 8 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := sampleCall()
			call.NodeID = "outage-" + strconv.Itoa(i)
			if err := c.Deliver(ctx, call); err != nil {
				t.Errorf("Deliver: %v", err)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	down.Store(false)
	wg.Wait()
	if got := logLines(logs, "WARN", "will retry"); len(got) != 1 {
		t.Errorf("%d retry warnings, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := logLines(logs, "INFO", "node answers again"); len(got) != 1 {
		t.Errorf("%d lines for the return, want 1:\n%s", len(got), logs)
	}
	if got := logLines(logs, "DEBUG", "will retry"); len(got) < 8 {
		t.Errorf("%d retries at debug, want the rest of them", len(got))
	}
}

// A 503 written before the node recovered can reach us after another call's
// success: it belongs to the outage that just ended, so it is neither a second
// warning nor, when it clears, a second "answers again"; a different reason, or
// the same one after a quiet second, is news.
func TestStragglerReplyAfterTheReturnIsNotANewOutage(t *testing.T) {
	t.Parallel()
	c, _, logs := logClient(t, "http://127.0.0.1:9", nil)
	sinceWake := func() { c.lastBack.Store(time.Now().Add(-2 * minWakeInterval).UnixNano()) }
	if !c.retrying("http_503") {
		t.Fatal("the first 503 of an outage is not new")
	}
	c.nodeAnswered()
	if c.failing.Load() {
		t.Fatal("an answer did not end the outage")
	}
	if c.retrying("http_503") {
		t.Error("a 503 right after the return counted as a new outage")
	}
	sinceWake()
	c.nodeAnswered() // ends the straggler's episode
	if got := logLines(logs, "INFO", "node answers again"); len(got) != 1 {
		t.Errorf("%d return lines, want 1 (the straggler's end is not news):\n%s", len(got), logs)
	}
	if got := logLines(logs, "DEBUG", "node answers again"); len(got) != 1 {
		t.Errorf("%d debug return lines, want 1 for the straggler's end:\n%s", len(got), logs)
	}
	if !c.retrying("timeout") {
		t.Error("a new reason right after the return was not new")
	}
	sinceWake()
	c.nodeAnswered()
	if got := logLines(logs, "INFO", "node answers again"); len(got) != 2 {
		t.Errorf("%d return lines, want 2 (the timeouts were news):\n%s", len(got), logs)
	}
	c.epMu.Lock()
	c.epEnded = time.Now().Add(-2 * minWakeInterval)
	c.epMu.Unlock()
	if !c.retrying("http_503") {
		t.Error("a 503 a quiet while after the return was not a new outage")
	}
}
