package firehose

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// IDSet is a bounded set of ids: once full, adding evicts the oldest entry
// (a ring), which is what retries need: they come soon after the original.
//
// It is sized for a million call ids, so it keeps no strings and no Go map:
// each id is a 64-bit keyed hash in a ring, found through an open-addressing
// table of 32-bit ring positions at most half full. That is 16-24 bytes per
// id (~17 MB at 1,000,000 ids; a map of 128-bit hashes took ~75). A false
// "seen" (a call skipped as already delivered) needs two of the ids held to
// share 64 bits under a random seed: about 5e-14 per lookup at a million ids.
// Safe for concurrent use; the zero capacity set remembers nothing.
type IDSet struct {
	seed  maphash.Seed
	cap   int
	mu    sync.Mutex
	ring  []uint64 // hashes in insertion order, grown lazily up to cap
	next  int      // once full: the oldest entry, the next to be replaced
	table []uint32 // ring position+1 per slot, 0 = empty; len is a power of two
}

// maxIDSetCap keeps the table's positions within 32 bits.
const maxIDSetCap = 1 << 30

// NewIDSet returns a set holding at most capacity ids.
func NewIDSet(capacity int) *IDSet {
	capacity = min(max(capacity, 0), maxIDSetCap)
	return &IDSet{seed: maphash.MakeSeed(), cap: capacity}
}

// Contains reports whether id was added and not yet evicted.
func (s *IDSet) Contains(id string) bool {
	if s.cap == 0 {
		return false
	}
	h := maphash.String(s.seed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.find(h)
	return ok
}

// Add remembers id, evicting the oldest id when full.
func (s *IDSet) Add(id string) {
	if s.cap == 0 {
		return
	}
	h := maphash.String(s.seed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.find(h); ok {
		return
	}
	if len(s.ring) < s.cap {
		// An idle endpoint stays small: ring and table grow with use, the
		// ring to exactly cap (append's own growth would overshoot it).
		if len(s.ring) == cap(s.ring) {
			s.ring = append(make([]uint64, 0, min(max(1024, 2*cap(s.ring)), s.cap)), s.ring...)
		}
		s.ring = append(s.ring, h)
		if 2*len(s.ring) > len(s.table) {
			s.rehash(max(1024, 2*len(s.table)))
		} else {
			s.insert(h, uint32(len(s.ring)))
		}
		return
	}
	s.remove(s.next)
	s.ring[s.next] = h
	s.insert(h, uint32(s.next+1))
	s.next = (s.next + 1) % s.cap
}

// Len returns the number of ids held.
func (s *IDSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ring)
}

// Delivered implements pipeline.Deduper.
func (s *IDSet) Delivered(requestID string) bool { return s.Contains(requestID) }

// MarkDelivered implements pipeline.Deduper.
func (s *IDSet) MarkDelivered(requestID string) { s.Add(requestID) }

func (s *IDSet) mask() uint64 { return uint64(len(s.table) - 1) }

// find returns the table slot holding h.
func (s *IDSet) find(h uint64) (int, bool) {
	if len(s.table) == 0 {
		return 0, false
	}
	m := s.mask()
	for i := h & m; ; i = (i + 1) & m {
		p := s.table[i]
		if p == 0 {
			return 0, false
		}
		if s.ring[p-1] == h {
			return int(i), true
		}
	}
}

func (s *IDSet) insert(h uint64, pos uint32) {
	m := s.mask()
	i := h & m
	for s.table[i] != 0 {
		i = (i + 1) & m
	}
	s.table[i] = pos
}

// remove deletes ring entry pos from the table, shifting back the entries
// after it in their probe run so that lookups need no tombstones.
func (s *IDSet) remove(pos int) {
	i, ok := s.find(s.ring[pos])
	if !ok {
		return
	}
	m := s.mask()
	for j := (uint64(i) + 1) & m; s.table[j] != 0; j = (j + 1) & m {
		home := s.ring[s.table[j]-1] & m
		// Move j into the hole i unless its home lies cyclically in (i, j].
		if (j-home)&m >= (j-uint64(i))&m {
			s.table[i] = s.table[j]
			i = int(j)
		}
	}
	s.table[i] = 0
}

// rehash rebuilds the table with n slots, rounded up to a power of two.
func (s *IDSet) rehash(n int) {
	n = 1 << bits.Len(uint(n-1))
	s.table = make([]uint32, n)
	for p, h := range s.ring {
		s.insert(h, uint32(p+1))
	}
}
