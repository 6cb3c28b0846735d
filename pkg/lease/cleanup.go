package lease

import (
	"slices"
	"strings"
)

// Lease cleanup: which leases shard sync deletes, and why. The rules follow
// the Java KCL's LeaseCleanupManager (completed shards) and its deletion of
// leases of shards gone from the stream, never earlier than either.

// deletion is a lease shard sync deletes, conditional on it being unchanged.
type deletion struct {
	lease Lease
	why   string
}

const (
	whyChildrenStarted = "finished and every child has started"
	whyGoneFinished    = "finished, and the stream no longer has the shard"
	whyGoneUnfinished  = "the stream no longer has the shard (its records expired)"
)

// planCleanup returns the leases to delete:
//
//   - a lease at SHARD_END still in the stream once every child (from
//     childShardIds and the listing) has a lease that made progress (its
//     checkpoint is past TRIM_HORIZON, LATEST and AT_TIMESTAMP: the Java KCL
//     keeps the parent while a child is at TRIM_HORIZON or AT_TIMESTAMP,
//     LATEST is kept too here to be no earlier) and none of its own parents
//     has a lease any more (the KCL deletes ancestors first);
//   - a lease of a shard gone from the stream, finished or not, once every
//     child the stream still has is leased (so no child is created at the
//     initial position for want of a leased parent). An unfinished one only
//     when idle (unowned, or its owner stopped renewing it: nobody reads it)
//     and older than the listing (its shard id below the newest listed one,
//     so a listing that does not show a brand-new shard yet deletes nothing).
//
// leased holds the leases after this sync's creations; listed and kids come
// from the listing. An empty listing deletes nothing.
func planCleanup(leases []Lease, leased map[string]Lease, listed map[string]Shard, kids map[string][]string, idle func(Lease) bool) []deletion {
	if len(listed) == 0 {
		return nil
	}
	newest := ""
	for id := range listed {
		newest = max(newest, id)
	}
	var out []deletion
	for _, l := range leases {
		children := dedupe(append(slices.Clone(l.ChildShardIDs), kids[l.Key]...))
		if _, inStream := listed[l.Key]; inStream {
			if l.Ended() && len(children) > 0 && !anyLeased(l.ParentShardIDs, leased) && allStarted(children, leased) {
				out = append(out, deletion{l, whyChildrenStarted})
			}
			continue
		}
		if !childrenLeased(Lease{Key: l.Key, ChildShardIDs: children}, leased, listed) {
			continue
		}
		switch {
		case l.Ended():
			out = append(out, deletion{l, whyGoneFinished})
		case strings.Compare(l.Key, newest) < 0 && idle(l):
			out = append(out, deletion{l, whyGoneUnfinished})
		}
	}
	return out
}

// started: the child's lease made progress. Its processor only checkpoints
// after its parents finished, so by then nobody needs the parent's lease.
func started(l Lease) bool {
	switch l.Checkpoint {
	case "", TrimHorizon, Latest, AtTimestamp:
		return false
	}
	return true
}

func allStarted(children []string, leased map[string]Lease) bool {
	for _, ch := range children {
		if l, ok := leased[ch]; !ok || !started(l) {
			return false
		}
	}
	return true
}

func anyLeased(keys []string, leased map[string]Lease) bool {
	for _, k := range keys {
		if _, ok := leased[k]; ok {
			return true
		}
	}
	return false
}
