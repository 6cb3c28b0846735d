package main

import (
	"strings"
	"sync"
	"testing"

	"github.com/wallarm/apigw-connector/internal/leastnode"
)

// Every call's two messages reach the node once, in either shape of the floor:
// one message per write, and pipelined with a last batch shorter than depth.
func TestRunDeliversEveryCallOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ calls, conns, depth int }{
		{calls: 50, conns: 4, depth: 1},
		{calls: 101, conns: 3, depth: 8}, // 34 calls per connection: batches of 8 and a last of 2
		{calls: 5, conns: 8, depth: 4},   // more connections than calls
	} {
		var mu sync.Mutex
		seen := map[string]int{}
		srv, err := leastnode.Start("127.0.0.1:0", leastnode.Options{OnResponse: func(id string) {
			mu.Lock()
			seen[id]++
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		if err := run(strings.TrimPrefix(srv.URL(), "http://"), tc.calls, tc.conns, tc.depth); err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if req, resp := srv.Counts(); req != int64(tc.calls) || resp != int64(tc.calls) {
			t.Errorf("%+v: the node read %d request and %d response messages, want %d each", tc, req, resp, tc.calls)
		}
		mu.Lock()
		if len(seen) != tc.calls {
			t.Errorf("%+v: %d distinct response ids, want %d", tc, len(seen), tc.calls)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%+v: response %s came %d times", tc, id, n)
			}
		}
		mu.Unlock()
	}
}
