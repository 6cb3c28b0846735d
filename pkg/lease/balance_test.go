package lease

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPlan: one take cycle's decision over a large table.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n, " leases"), func(b *testing.B) {
			v := view{self: "me", expired: map[string]bool{}, held: map[string]bool{}, maxSteal: 1}
			for i := range n {
				v.leases = append(v.leases, Lease{Key: fmt.Sprint("s", i), Owner: fmt.Sprint("w", i%20)})
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				plan(v, rnd)
			}
		})
	}
}

// A worker still watching (less than a failover time since start) takes
// unowned leases but steals nothing.
func TestPlanWatchingStealsNothing(t *testing.T) {
	t.Parallel()
	v := view{self: "me", expired: map[string]bool{"s4": true}, held: map[string]bool{}, maxSteal: 1, watching: true,
		leases: []Lease{{Key: "s0", Owner: "a"}, {Key: "s1", Owner: "a"}, {Key: "s2", Owner: "a"}, {Key: "s3", Owner: "a"}, {Key: "s4"}}}
	take, steal, _ := plan(v, rand.New(rand.NewPCG(1, 2)))
	if len(take) != 1 || take[0].Key != "s4" || len(steal) != 0 {
		t.Errorf("watching: take %v steal %v, want the unowned s4 and no steal", take, steal)
	}
	v.watching = false
	if _, steal, _ := plan(v, rand.New(rand.NewPCG(1, 2))); len(steal) != 0 {
		t.Errorf("unowned lease available: steal %v, want none (take first)", steal)
	}
	delete(v.expired, "s4")
	v.leases = v.leases[:4]
	if _, steal, _ := plan(v, rand.New(rand.NewPCG(1, 2))); len(steal) != 1 {
		t.Errorf("after watching, nothing expired: steal %v, want one", steal)
	}
}
