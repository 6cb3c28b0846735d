package node

import "sync"

// halfSentCap bounds the memory of pairs cut in half (about 100 bytes each).
const halfSentCap = 1 << 16

// halfSent remembers calls whose request message the node accepted (or may
// have) but whose response message was not delivered: the caller's context
// ended in between (Firehose ack deadline, Lambda deadline, shutdown). When the same
// call is delivered again, resending the request would be refused by the
// node as a duplicate request id and the call lost; only the response is
// still owed.
type halfSent struct {
	mu   sync.Mutex
	ids  map[string]halfEntry
	ring []string // insertion order, for eviction; "" = free slot
	next int
}

// halfState is what is known of a cut-short call's request message.
type halfState int

const (
	halfNone     halfState = iota
	halfMaybe              // its fate was not seen: resend it, and read a 400 as "already there"
	halfAccepted           // the node accepted it: send only the response
)

// halfEntry is an id's state and its ring slot.
type halfEntry struct {
	st   halfState
	slot int
}

func newHalfSent() *halfSent {
	return &halfSent{ids: make(map[string]halfEntry), ring: make([]string, halfSentCap)}
}

func (h *halfSent) add(id string, st halfState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.ids[id]; ok {
		e.st = st
		h.ids[id] = e
		return
	}
	if old := h.ring[h.next]; old != "" {
		delete(h.ids, old)
	}
	h.ring[h.next] = id
	h.ids[id] = halfEntry{st: st, slot: h.next}
	h.next = (h.next + 1) % len(h.ring)
}

// take returns what is known of id, and forgets it.
func (h *halfSent) take(id string) halfState {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.ids[id]
	if !ok {
		return halfNone
	}
	delete(h.ids, id)
	// Free its slot too: left there, the id added again later would be evicted
	// when this old slot comes round, a full turn early.
	h.ring[e.slot] = ""
	return e.st
}
