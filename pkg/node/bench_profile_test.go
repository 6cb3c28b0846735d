package node

import "testing"

// BenchmarkProfileMessages is the per-call cost of the wire shape alone: both
// messages of one call built and written into a reused buffer, no network.
func BenchmarkProfileMessages(b *testing.B) {
	c, _ := testClient(b, "http://127.0.0.1:1", nil)
	call := sampleCall()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		m, _, err := c.newMessage(call)
		if err != nil {
			b.Fatal(err)
		}
		buf = c.appendMessage(buf[:0], m, kindRequest)
		buf = c.appendMessage(buf[:0], m, kindResponse)
		freeMessage(m) // as Deliver does
	}
}
