package node

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// pairingNode behaves like the real node on request ids: a second request
// message for an id it holds is a 400 "duplicate request id"; a response
// completes the pair only after its request.
type pairingNode struct {
	mu        sync.Mutex
	requests  map[string]bool
	completed map[string]bool
}

func newPairingNode() *pairingNode {
	return &pairingNode{requests: map[string]bool{}, completed: map[string]bool{}}
}

// handle answers one message.
func (p *pairingNode) handle(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Wallarm-Request-Id")
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Header.Get("X-Wallarm-Response-Code") == "" {
		if p.requests[id] {
			http.Error(w, "duplicate request id", http.StatusBadRequest)
			return
		}
		p.requests[id] = true
		return
	}
	if !p.requests[id] {
		http.Error(w, "response without request", http.StatusBadRequest)
		return
	}
	p.completed[id] = true
}

func (p *pairingNode) done(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.completed[id]
}

func TestRequestResentAfterATimeoutIsNotLostToDuplicateID(t *testing.T) {
	t.Parallel()
	node := newPairingNode()
	rs := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		node.handle(w, r)
		if n == 0 { // the node took the first request but its reply is late: the client times out
			time.Sleep(400 * time.Millisecond)
		}
	})
	c, _ := testClient(t, rs.URL, func(cfg *Config) { cfg.ReplyTimeout = 100 * time.Millisecond })
	call := sampleCall()
	if err := c.Deliver(context.Background(), call); err != nil {
		t.Fatalf("Deliver: %v, want nil: the call reached the node", err)
	}
	if !node.done(call.RequestID) {
		t.Fatalf("pair not completed at the node; messages %v", rs.kinds())
	}
	if got := rs.kinds(); !slices.Equal(got, []string{"req", "req", "resp"}) {
		t.Fatalf("messages %v, want req (timed out), req (duplicate), resp", got)
	}
}

func TestCallCutInHalfOwesOnlyItsResponse(t *testing.T) {
	t.Parallel()
	node := newPairingNode()
	var down sync.Mutex
	down.Lock() // responses stall until unlocked
	rs := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Wallarm-Response-Code") != "" && !down.TryLock() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		} else if r.Header.Get("X-Wallarm-Response-Code") != "" {
			down.Unlock()
		}
		node.handle(w, r)
	})
	c, _ := testClient(t, rs.URL, nil)
	call := sampleCall()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Deliver(ctx, call); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Deliver: %v, want the deadline", err)
	}
	down.Unlock() // the node recovers; the source delivers the batch again
	if err := c.Deliver(context.Background(), call); err != nil {
		t.Fatalf("second Deliver: %v", err)
	}
	if !node.done(call.RequestID) {
		t.Fatal("pair not completed at the node")
	}
	reqs := 0
	for _, k := range rs.kinds() {
		if k == "req" {
			reqs++
		}
	}
	if reqs != 1 {
		t.Fatalf("request message sent %d times, want once: %v", reqs, rs.kinds())
	}
}

func TestHalfSentIsBounded(t *testing.T) {
	t.Parallel()
	h := newHalfSent()
	for i := range halfSentCap + 10 {
		h.add(string(rune('a'+i%26))+time.Duration(i).String(), halfAccepted)
	}
	if len(h.ids) != halfSentCap {
		t.Fatalf("%d ids kept, want %d", len(h.ids), halfSentCap)
	}
	last := string(rune('a'+(halfSentCap+9)%26)) + time.Duration(halfSentCap+9).String()
	if h.take(last) != halfAccepted || h.take(last) != halfNone {
		t.Fatal("take must report a kept id once")
	}
	if h.take(string(rune('a'))+time.Duration(0).String()) != halfNone {
		t.Fatal("the oldest id survived eviction")
	}
}

func TestRequestCutMidFlightIsNotLostOnRedelivery(t *testing.T) {
	t.Parallel()
	node := newPairingNode()
	rs := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		node.handle(w, r)
		if n == 0 { // the node holds the request; its reply comes after the caller gave up
			time.Sleep(300 * time.Millisecond)
		}
	})
	c, _ := testClient(t, rs.URL, nil)
	call := sampleCall()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Deliver(ctx, call); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Deliver: %v, want the deadline", err)
	}
	if err := c.Deliver(context.Background(), call); err != nil {
		t.Fatalf("redelivery: %v, want nil: the node holds the request", err)
	}
	if !node.done(call.RequestID) {
		t.Fatalf("pair not completed; messages %v", rs.kinds())
	}
}

// An id taken and added again lives a full ring turn from its new slot: its old
// slot, reused first, must not evict it.
func TestHalfSentReAddedIDOutlivesItsOldSlot(t *testing.T) {
	t.Parallel()
	h := newHalfSent()
	h.add("again", halfMaybe)
	if h.take("again") != halfMaybe {
		t.Fatal("take lost a fresh id")
	}
	h.add("again", halfAccepted)
	// halfSentCap-1 more ids: the old slot is reused, the new one not yet.
	for i := range halfSentCap - 1 {
		h.add("filler-"+strconv.Itoa(i), halfAccepted)
	}
	if got := h.take("again"); got != halfAccepted {
		t.Fatalf("take(again) = %v after %d newer ids, want halfAccepted (evicted through its old slot)", got, halfSentCap-1)
	}
	if len(h.ids) > halfSentCap {
		t.Fatalf("%d ids kept, more than %d", len(h.ids), halfSentCap)
	}
}
