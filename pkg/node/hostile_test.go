package node

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

// A reply nobody asked for must never be read as the next message's: the call
// would count as delivered although the node answered 503 to it. The stale
// reply arrives with the one before it (then it is buffered) or while the
// connection is idle (then only a check of the socket sees it).
func TestUnsolicitedReplyIsNotTakenForTheNextOne(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		extraOn int           // the request whose reply is followed by an extra 200
		gap     time.Duration // between the reply and the extra one
		pause   time.Duration // between the two calls
	}{
		{"in the same write", 0, 0, 0},
		{"while idle", 1, 30 * time.Millisecond, 150 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := testkit.NewHostileNode(t, testkit.HostileOptions{
				Gap: tt.gap,
				Reply: func(n int) []string {
					switch {
					case n == tt.extraOn:
						return []string{testkit.Reply200, testkit.Reply200}
					case n == tt.extraOn+1:
						return []string{testkit.Reply503} // the message after: really refused once
					}
					return []string{testkit.Reply200}
				},
			})
			c, reg := testClient(t, node.URL(), func(c *Config) { c.Concurrency = 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i := range 2 {
				call := sampleCall()
				call.NodeID = "call-" + strconv.Itoa(i)
				if err := c.Deliver(ctx, call); err != nil {
					t.Fatalf("Deliver %d: %v", i, err)
				}
				time.Sleep(tt.pause)
			}
			if v := metricValue(t, reg, "apigw_connector_node_retries_total", map[string]string{"reason": "http_503"}); v != 1 {
				t.Errorf("retries_total{http_503} = %v, want 1: the 503 was hidden by a stale reply", v)
			}
			// 4 messages and the one answered 503 resent.
			heads := node.Heads()
			if len(heads) != 5 {
				t.Fatalf("node read %d messages, want 5", len(heads))
			}
			refused := heads[tt.extraOn+1]
			if heads[tt.extraOn+2] != refused {
				t.Errorf("the message the node answered 503 was not sent again; messages:\n%s", strings.Join(heads, "\n"))
			}
		})
	}
}

// A node that closes keep-alive connections without saying so (after every
// reply, or every second one) costs connections, never calls or retries.
func TestSilentlyClosedConnectionsAreNotReused(t *testing.T) {
	t.Parallel()
	for _, after := range []int{1, 2} {
		node := testkit.NewHostileNode(t, testkit.HostileOptions{CloseAfter: after})
		c, reg := testClient(t, node.URL(), func(c *Config) { c.Concurrency = 1 })
		for i := range 5 {
			if err := c.Deliver(context.Background(), sampleCall()); err != nil {
				t.Fatalf("close after %d: Deliver %d: %v", after, i, err)
			}
			time.Sleep(10 * time.Millisecond) // the close arrives while idle
		}
		if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 0 {
			t.Errorf("close after %d: retries_total = %v, want 0", after, v)
		}
		if n := node.Requests(); n != 10 {
			t.Errorf("close after %d: node read %d messages, want 10", after, n)
		}
	}
}
