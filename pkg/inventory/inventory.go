// Package inventory builds an API inventory from completed calls: endpoints
// by host, method and path template (identifier segments folded into {id}),
// with call counts, statuses and first/last seen. devnode and the inventory
// command share it, so both fold paths the same way.
package inventory

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// Endpoint is one inventory entry: an API operation seen in completed calls.
type Endpoint struct {
	Host   string `json:"host"`
	Method string `json:"method"`
	// Path is the path template: numeric, UUID and hex-id segments become {id}.
	Path  string `json:"path"`
	Calls int64  `json:"calls"`
	// Statuses counts calls by the status their response message carried.
	Statuses  map[int]int64 `json:"statuses"`
	FirstSeen time.Time     `json:"first_seen"`
	LastSeen  time.Time     `json:"last_seen"`
	// Series is the calls over time (see Timeline); nil for no calls.
	Series *Series `json:"series,omitempty"`
}

type endpointKey struct{ host, method, path string }

type endpointStats struct {
	calls    int64
	statuses map[int]int64
	first    time.Time
	last     time.Time
	counts   []int64 // on the inventory's grid
}

// Inventory aggregates completed calls into endpoints: the folding of
// concrete paths into templates that API Discovery-like views need. Safe for
// concurrent use; one lock is enough, the critical section is a map update.
type Inventory struct {
	mu   sync.Mutex
	eps  map[endpointKey]*endpointStats
	grid grid
}

// New returns an empty inventory keeping calls over time as FileTimeline.
func New() *Inventory { return NewWithTimeline(FileTimeline) }

// NewWithTimeline returns an empty inventory keeping calls over time as tl.
func NewWithTimeline(tl Timeline) *Inventory {
	return &Inventory{eps: make(map[endpointKey]*endpointStats), grid: newGrid(tl)}
}

func (inv *Inventory) eachCounts(f func([]int64)) {
	for _, e := range inv.eps {
		f(e.counts)
	}
}

// Add counts one completed call; path is the concrete path, folded here.
func (inv *Inventory) Add(host, method, path string, status int, at time.Time) {
	k := endpointKey{host: host, method: method, path: FoldPath(path)}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	e := inv.eps[k]
	if e == nil {
		e = &endpointStats{statuses: make(map[int]int64, 2), first: at, last: at,
			counts: make([]int64, inv.grid.tl.Buckets)}
		inv.eps[k] = e
	}
	if i, ok := inv.grid.place(at, inv.eachCounts); ok {
		e.counts[i]++
	}
	e.calls++
	e.statuses[status]++
	// Calls complete concurrently, so arrival order is not time order.
	if at.Before(e.first) {
		e.first = at
	}
	if at.After(e.last) {
		e.last = at
	}
}

// Snapshot returns the endpoints sorted by host, path, method, with their
// series up to now.
func (inv *Inventory) Snapshot() []Endpoint { return inv.SnapshotAt(time.Now()) }

// SnapshotAt is Snapshot with a sliding timeline's view ending at now.
func (inv *Inventory) SnapshotAt(now time.Time) []Endpoint {
	inv.mu.Lock()
	out := make([]Endpoint, 0, len(inv.eps))
	for k, e := range inv.eps {
		st := make(map[int]int64, len(e.statuses))
		for code, n := range e.statuses {
			st[code] = n
		}
		out = append(out, Endpoint{
			Host: k.host, Method: k.method, Path: k.path,
			Calls: e.calls, Statuses: st,
			FirstSeen: e.first.UTC(), LastSeen: e.last.UTC(),
			Series: inv.grid.series(e.counts, now),
		})
	}
	inv.mu.Unlock()
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Method, b.Method))
	})
	return out
}

// IDSegment replaces path segments that look like identifiers.
const IDSegment = "{id}"

// FoldPath turns a concrete path into a template by replacing each segment that is
// numeric, a UUID, or a hex id (at least 8 hex digits, one of them a decimal digit,
// so words like "deadbeef" or "facade" stay) with {id}.
func FoldPath(p string) string {
	// Fast path: most paths are short; only allocate when a segment folds.
	var b strings.Builder
	folded := false
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		seg := p[start:i]
		if isIDSegment(seg) {
			if !folded {
				folded = true
				b.Grow(len(p))
				b.WriteString(p[:start])
			}
			b.WriteString(IDSegment)
		} else if folded {
			b.WriteString(seg)
		}
		if i < len(p) && folded {
			b.WriteByte('/')
		}
		start = i + 1
	}
	if !folded {
		return p
	}
	return b.String()
}

func isIDSegment(s string) bool {
	if s == "" {
		return false
	}
	return isDecimal(s) || isUUID(s) || isHexID(s)
}

func isDecimal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isUUID matches the 8-4-4-4-12 hex form of any version.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHexDigit(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHexID(s string) bool {
	if len(s) < 8 {
		return false
	}
	digit := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isHexDigit(c) {
			return false
		}
		if c >= '0' && c <= '9' {
			digit = true
		}
	}
	return digit
}

// Sink is a pipeline forwarder that delivers every call into the inventory:
// the pipeline's decoding, parsing and host rules with no node behind them.
type Sink struct{ Inv *Inventory }

// Deliver adds the call; it never fails.
func (s Sink) Deliver(_ context.Context, call *accesslog.APICall) error {
	at := call.RequestTime
	if at.IsZero() {
		at = time.Now()
	}
	s.Inv.Add(call.Host, call.Method, call.Path, call.Status, at)
	return nil
}
