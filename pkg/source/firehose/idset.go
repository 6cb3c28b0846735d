package firehose

import (
	"hash/maphash"
	"sync"
)

// IDSet is a bounded set of ids: once full, adding evicts the oldest entry
// (a ring), which is what retries need: they come soon after the original.
// Ids are kept as 128-bit keyed hashes, so a million call ids cost ~40 MB
// whatever their length; a false "seen" needs a 128-bit collision.
// Safe for concurrent use; the zero capacity set remembers nothing.
type IDSet struct {
	mu     sync.Mutex
	s1, s2 maphash.Seed
	m      map[idKey]struct{}
	ring   []idKey
	next   int
	cap    int
}

type idKey [2]uint64

// NewIDSet returns a set holding at most capacity ids.
func NewIDSet(capacity int) *IDSet {
	if capacity < 0 {
		capacity = 0
	}
	return &IDSet{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), m: make(map[idKey]struct{}), cap: capacity}
}

func (s *IDSet) key(id string) idKey {
	return idKey{maphash.String(s.s1, id), maphash.String(s.s2, id)}
}

// Contains reports whether id was added and not yet evicted.
func (s *IDSet) Contains(id string) bool {
	if s.cap == 0 {
		return false
	}
	k := s.key(id)
	s.mu.Lock()
	_, ok := s.m[k]
	s.mu.Unlock()
	return ok
}

// Add remembers id, evicting the oldest id when full.
func (s *IDSet) Add(id string) {
	if s.cap == 0 {
		return
	}
	k := s.key(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		return
	}
	if len(s.ring) < s.cap {
		s.ring = append(s.ring, k) // grows lazily: an idle endpoint stays small
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % s.cap
	}
	s.m[k] = struct{}{}
}

// Len returns the number of ids held.
func (s *IDSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Delivered implements pipeline.Deduper.
func (s *IDSet) Delivered(requestID string) bool { return s.Contains(requestID) }

// MarkDelivered implements pipeline.Deduper.
func (s *IDSet) MarkDelivered(requestID string) { s.Add(requestID) }
