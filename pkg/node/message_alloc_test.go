//go:build !race

// Allocation counts, without -race only: under the race detector sync.Pool
// drops items at random. scripts/test.sh runs this package without -race too.

package node

import "testing"

// Building a call's two messages allocates nothing once the message pool is
// warm (it allocated the message and, for a client address, netip's parse).
func TestMessagesDoNotAllocate(t *testing.T) {
	c, _ := testClient(t, "http://127.0.0.1:1", nil)
	call := sampleCall()
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		m, _, err := c.newMessage(call)
		if err != nil {
			t.Fatal(err)
		}
		buf = c.appendMessage(buf[:0], m, kindRequest)
		buf = c.appendMessage(buf[:0], m, kindResponse)
		freeMessage(m)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call's messages, want 0", allocs)
	}
}
