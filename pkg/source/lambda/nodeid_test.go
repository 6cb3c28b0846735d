package lambda

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/source/firehose"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func sharedIDLine(path string) string {
	return fmt.Sprintf(`{"requestId":"client-set-id","httpMethod":"GET","path":%q,"status":"200","domainName":"api.example.com","sourceIp":"203.0.113.7","requestTimeEpoch":"1795515330000"}`, path)
}

// TestSharedRequestIDCallsAllReachTheNode: two calls with the same
// client-set requestId are two calls at the node; Lambda retrying the same
// event changes nothing.
func TestSharedRequestIDCallsAllReachTheNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	payload := awslogsPayload(traffic.GzipEnvelope("/aws/apigateway/shop", "s", []traffic.LogEvent{
		{ID: fmt.Sprintf("%056d", 1), Timestamp: 1795515330000, Message: sharedIDLine("/a")},
		{ID: fmt.Sprintf("%056d", 2), Timestamp: 1795515330000, Message: sharedIDLine("/b")},
	}))
	if _, err := e.h.Invoke(withDeadline(t, 30*time.Second), payload); err != nil {
		t.Fatalf("invoke: %v", err)
	}
	inv := e.node.Inventory()
	var paths []string
	for _, ep := range inv {
		paths = append(paths, ep.Path)
	}
	if st := e.node.Stats(); st.Completed != 2 || strings.Join(paths, ",") != "/a,/b" {
		t.Fatalf("node completed %d calls, inventory %v: want both calls sharing a requestId", st.Completed, paths)
	}
	// A retried invocation in another execution environment: its dedup
	// memory is empty, so the calls reach the node again, under the same ids.
	e.h.Dedup = firehose.NewIDSet(100_000)
	if _, err := e.h.Invoke(withDeadline(t, 30*time.Second), payload); err != nil {
		t.Fatalf("retried invoke: %v", err)
	}
	if got := e.node.Inventory(); !testenv.SameCalls(got, inv) {
		t.Fatalf("inventory changed on retry:\n%+v\n%+v", inv, got)
	}
	if st := e.node.Stats(); st.Completed != 2 || st.Duplicates != 2 || st.OwnHost != 0 {
		t.Fatalf("node stats after retry %+v", st)
	}
}
