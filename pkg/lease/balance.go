package lease

import (
	"math/rand/v2"
	"slices"
	"sort"
)

// view is what one take cycle knows: the table's active (not SHARD_END)
// leases and which of them are expired by this worker's clock.
type view struct {
	self     string
	leases   []Lease
	expired  map[string]bool // by lease key
	held     map[string]bool // leases this worker holds (its own record, not the scan's)
	maxHeld  int             // 0 = no cap
	maxSteal int
	// watching: this worker has not yet watched the table for a failover
	// time, so "not expired" means "not known to be expired": steal nothing.
	watching bool
	// handingOff: leases under a hand-off (checkpointOwner set): counted
	// as their new owner's and never stolen (the KCL 3.x rule); taken only
	// once expired (the taker died).
	handingOff []string
}

// plan decides which leases to take (expired or unowned) and which to steal.
// target = ceil(leases / workers), workers = distinct owners of unexpired
// leases plus self, capped by maxHeld. Expired leases come first; stealing
// happens only when none are left, from the most loaded worker, at most
// maxSteal leases, and never leaves that worker below target (but one, when
// this worker is two or more below target and everyone else at it), and
// never while watching. SHARD_END leases are not in v.leases: never balanced.
func plan(v view, rnd *rand.Rand) (take, steal []Lease, target int) {
	workers := map[string]int{v.self: 0}
	var available []Lease
	for _, l := range v.leases {
		switch {
		case v.held[l.Key]:
			workers[v.self]++
		case v.expired[l.Key]: // even mid-hand-off: its taker died
			available = append(available, l)
		default:
			workers[l.Owner]++
		}
	}
	n := len(v.leases)
	if n == 0 {
		return nil, nil, 0
	}
	target = (n + len(workers) - 1) / len(workers)
	if v.maxHeld > 0 && target > v.maxHeld {
		target = v.maxHeld
	}
	need := target - workers[v.self]
	if need <= 0 {
		return nil, nil, target
	}
	if len(available) > 0 {
		// Random order spreads concurrent takers over different leases;
		// unowned first, they are free without waiting on anyone's clock.
		rnd.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
		sort.SliceStable(available, func(i, j int) bool { return available[i].Owner == "" && available[j].Owner != "" })
		return available[:min(need, len(available))], nil, target
	}

	if v.watching {
		return nil, nil, target
	}
	var victim string
	most := 0
	owners := make([]string, 0, len(workers))
	for w := range workers {
		owners = append(owners, w)
	}
	slices.Sort(owners)
	rnd.Shuffle(len(owners), func(i, j int) { owners[i], owners[j] = owners[j], owners[i] })
	for _, w := range owners {
		if w != v.self && workers[w] > most {
			victim, most = w, workers[w]
		}
	}
	var k int
	switch {
	case victim == "" || most < target:
		return nil, nil, target
	case most == target:
		// Everyone else is at target and this worker two or more below it
		// (e.g. 43/43/43/43/43/41 of 256 over 6): take one, as the Java
		// KCL does; both end within one of each other, so nothing flaps.
		if need < 2 {
			return nil, nil, target
		}
		k = 1
	default:
		k = min(max(v.maxSteal, 1), need, most-target)
	}
	var theirs []Lease
	for _, l := range v.leases {
		if l.Owner == victim && !v.expired[l.Key] && !v.held[l.Key] && !slices.Contains(v.handingOff, l.Key) {
			theirs = append(theirs, l)
		}
	}
	rnd.Shuffle(len(theirs), func(i, j int) { theirs[i], theirs[j] = theirs[j], theirs[i] })
	return nil, theirs[:min(k, len(theirs))], target
}
