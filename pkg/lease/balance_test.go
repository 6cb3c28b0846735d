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
