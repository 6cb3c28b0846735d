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

// 256 leases over 6 workers: five at the target (43) and one at 41 is not
// even; the one at 41 takes one from a worker at target (the Java KCL's
// rule), and at 42 it stops: no flapping.
func TestPlanStealsOneFromWorkersAtTarget(t *testing.T) {
	t.Parallel()
	build := func(mine int) view {
		v := view{self: "me", expired: map[string]bool{}, held: map[string]bool{}, maxSteal: 1}
		n := 0
		add := func(owner string, k int) {
			for range k {
				l := Lease{Key: fmt.Sprint("s", n), Owner: owner}
				n++
				v.leases = append(v.leases, l)
				if owner == "me" {
					v.held[l.Key] = true
				}
			}
		}
		for _, w := range []string{"a", "b", "c", "d", "e"} {
			add(w, 43)
		}
		add("me", mine)
		return v
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	if _, steal, target := plan(build(41), rnd); target != 43 || len(steal) != 1 {
		t.Errorf("at 41 of target 43 with everyone else at 43: steal %d (target %d), want 1", len(steal), target)
	}
	v := build(41)
	// After that steal: one worker at 42, me at 42. Nobody moves again.
	v.leases = v.leases[1:]
	v.leases = append(v.leases, Lease{Key: "moved", Owner: "me"})
	v.held["moved"] = true
	if _, steal, _ := plan(v, rnd); len(steal) != 0 {
		t.Errorf("at 42 of target 43: steal %d, want 0 (flapping)", len(steal))
	}
}
