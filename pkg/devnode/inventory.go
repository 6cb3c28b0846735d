package devnode

import (
	"time"

	"github.com/wallarm/apigw-connector/pkg/inventory"
)

// Endpoint is one inventory entry (see package inventory).
type Endpoint = inventory.Endpoint

// IDSegment replaces path segments that look like identifiers.
const IDSegment = inventory.IDSegment

// FoldPath turns a concrete path into a template (see inventory.FoldPath).
func FoldPath(p string) string { return inventory.FoldPath(p) }

// inventoryView is the devnode's view of the shared inventory.
type inventoryView struct{ *inventory.Inventory }

// newInventory keeps a live timeline: calls per 10 s over the last 10 minutes.
func newInventory() inventoryView {
	return inventoryView{inventory.NewWithTimeline(inventory.LiveTimeline)}
}

func (v inventoryView) add(host, method, path string, status int, at time.Time) {
	v.Add(host, method, path, status, at)
}

func (v inventoryView) snapshot(now time.Time) []Endpoint { return v.SnapshotAt(now) }
