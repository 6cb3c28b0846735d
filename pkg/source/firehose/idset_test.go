package firehose

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
)

// The set behaves as a FIFO-bounded set: checked against a plain model over
// random adds and lookups, with capacities that force eviction, wrap-around
// and the table's growth and back-shifted deletions.
func TestIDSetMatchesAFIFOModel(t *testing.T) {
	t.Parallel()
	for _, capacity := range []int{1, 2, 7, 1000, 3000} {
		t.Run(strconv.Itoa(capacity), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(capacity), 1))
			s := NewIDSet(capacity)
			held := map[string]bool{}
			var order []string
			for range 20_000 {
				id := strconv.Itoa(rng.IntN(4 * capacity))
				if rng.IntN(3) == 0 {
					if got := s.Contains(id); got != held[id] {
						t.Fatalf("Contains(%s) = %v, model says %v", id, got, held[id])
					}
					continue
				}
				s.Add(id)
				if !held[id] {
					held[id] = true
					order = append(order, id)
					if len(order) > capacity {
						delete(held, order[0])
						order = order[1:]
					}
				}
				if s.Len() != len(order) {
					t.Fatalf("Len %d, model %d", s.Len(), len(order))
				}
			}
			for _, id := range order {
				if !s.Contains(id) {
					t.Fatalf("lost %s", id)
				}
			}
		})
	}
}

// The dedup set of call ids holds a million ids by default: it must stay a
// few tens of megabytes (the earlier map of 128-bit hashes took ~75 bytes an
// id, ~170 MB of RSS at the cap). Not parallel: it reads the heap's size,
// which other tests' allocations would blur.
func TestIDSetBytesPerID(t *testing.T) {
	const n = 1_000_000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	s := NewIDSet(n)
	buf := make([]byte, 0, 48)
	for i := range n + n/2 { // past the cap: eviction running too
		buf = strconv.AppendInt(append(buf[:0], "a1b2c3d4-0000-4000-8000-"...), int64(i), 10)
		s.Add(string(buf))
	}
	after := heap()
	perID := float64(after-before) / n
	t.Logf("IDSet: %.1f bytes per id, %.1f MB at %d ids", perID, float64(after-before)/1e6, n)
	if s.Len() != n {
		t.Fatalf("Len %d, want %d", s.Len(), n)
	}
	if perID > 24 {
		t.Fatalf("%.1f bytes per id, want at most 24", perID)
	}
	runtime.KeepAlive(s)
}
