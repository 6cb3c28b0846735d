package firehose

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// sharedIDLine is a call whose requestId a client set (X-Amzn-RequestId):
// distinct calls carry the same one.
func sharedIDLine(path string) string {
	return fmt.Sprintf(`{"requestId":"client-set-id","httpMethod":"GET","path":%q,"status":"200","domainName":"api.example.com","sourceIp":"203.0.113.7","requestTimeEpoch":"1795515330000"}`, path)
}

// TestSharedRequestIDCallsAllReachTheNode: calls sharing a requestId are all
// delivered and all in the inventory; Firehose retrying the whole batch
// changes nothing.
func TestSharedRequestIDCallsAllReachTheNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	doc := traffic.GzipEnvelope("/aws/apigateway/shop", "s", []traffic.LogEvent{
		{ID: fmt.Sprintf("%056d", 1), Timestamp: 1795515330000, Message: sharedIDLine("/a")},
		{ID: fmt.Sprintf("%056d", 2), Timestamp: 1795515330000, Message: sharedIDLine("/b")},
	})
	// Firehose message extraction: plain lines, no event ids.
	lines := []byte(sharedIDLine("/c") + "\n" + sharedIDLine("/d") + "\n")
	d := delivery{id: "req-shared", records: [][]byte{doc, lines}}
	if r := e.post(d); r.status != http.StatusOK {
		t.Fatalf("status %d (%s)", r.status, r.raw)
	}
	inv := e.node.Inventory()
	var paths []string
	for _, ep := range inv {
		paths = append(paths, ep.Path)
	}
	if st := e.node.Stats(); st.Completed != 4 || strings.Join(paths, ",") != "/a,/b,/c,/d" {
		t.Fatalf("node completed %d calls, inventory %v: want all 4 calls sharing a requestId", st.Completed, paths)
	}
	// Firehose retries the whole batch (an ack lost on the way).
	if r := e.post(d); r.status != http.StatusOK {
		t.Fatalf("retry: status %d (%s)", r.status, r.raw)
	}
	if got := e.node.Inventory(); !testenv.SameCalls(got, inv) {
		t.Fatalf("inventory changed on retry:\n%+v\n%+v", inv, got)
	}
	if st := e.node.Stats(); st.Requests != 4 || st.Duplicates != 0 || st.OwnHost != 0 {
		t.Fatalf("node stats after retry %+v: want the retry suppressed by the call dedup", st)
	}
}
