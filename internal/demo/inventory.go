package demo

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// endpointGroup is one generated endpoint with the inventory rows that match it.
type endpointGroup struct {
	ep   traffic.ManifestEndpoint
	rows []devnode.Endpoint
}

func (g endpointGroup) calls() int64 {
	var n int64
	for _, r := range g.rows {
		n += r.Calls
	}
	return n
}

func (g endpointGroup) statuses() map[int]int64 {
	st := map[int]int64{}
	for _, r := range g.rows {
		for code, n := range r.Statuses {
			st[code] += n
		}
	}
	return st
}

// path is what the table shows: devnode's template when it folded the ids
// into one row, else the generated template and the number of distinct paths.
func (g endpointGroup) path() string {
	if len(g.rows) == 1 {
		return g.rows[0].Path
	}
	return fmt.Sprintf("%s (%d distinct paths)", g.ep.CalledTemplate, len(g.rows))
}

// matchInventory groups inventory rows under the generated endpoints; rows
// that fit none are returned apart. The most specific template wins (fewest
// parameters), so /pets/{id} never swallows /pets/search.
func matchInventory(eps []traffic.ManifestEndpoint, inv []devnode.Endpoint) (groups []endpointGroup, unexpected []devnode.Endpoint) {
	groups = make([]endpointGroup, len(eps))
	for i, e := range eps {
		groups[i].ep = e
	}
	for _, row := range inv {
		best, bestParams := -1, 1<<30
		for i, e := range eps {
			if e.Method != row.Method || e.Host != row.Host || !traffic.MatchesTemplate(row.Path, e.CalledTemplate) {
				continue
			}
			if n := strings.Count(e.CalledTemplate, "{"); n < bestParams {
				best, bestParams = i, n
			}
		}
		if best < 0 {
			unexpected = append(unexpected, row)
			continue
		}
		groups[best].rows = append(groups[best].rows, row)
	}
	return groups, unexpected
}

func formatStatuses(st map[int]int64) string {
	codes := make([]int, 0, len(st))
	for c := range st {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d:%d", c, st[c])
	}
	return strings.Join(parts, " ")
}
