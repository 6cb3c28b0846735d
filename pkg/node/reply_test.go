package node

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

// 500 is the node's reply when its connector.app_reply_timeout passes: retried,
// and the log line says what it may mean.
func TestReply500IsRetriedAndNamed(t *testing.T) {
	t.Parallel()
	node := testkit.NewHostileNode(t, testkit.HostileOptions{Reply: func(n int) []string {
		if n == 0 {
			return []string{"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 7\r\n\r\ntimeout"}
		}
		return []string{testkit.Reply200}
	}})
	c, reg, logs := logClient(t, node.URL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Deliver(ctx, sampleCall()); err != nil {
		t.Fatalf("Deliver: %v, want delivered after a retry", err)
	}
	if v := metricValue(t, reg, "apigw_connector_node_retries_total", map[string]string{"reason": "http_500"}); v != 1 {
		t.Errorf("retries_total{http_500} = %v, want 1", v)
	}
	if got := logLines(logs, "WARN", "connector.app_reply_timeout"); len(got) != 1 || !strings.Contains(got[0], `"body":"timeout"`) {
		t.Errorf("want one warning naming app_reply_timeout with the body, got:\n%s", logs)
	}
}

// A rejection keeps the node's reason, fit for a log line: control bytes gone,
// cut at snippetBytes with a mark.
func TestRejectionLogKeepsTheNodesReason(t *testing.T) {
	t.Parallel()
	body := "\x1b[31mhost not allowed\x1b[0m\r\nX-Injected: 1\r\n" + strings.Repeat("x", 1000)
	node := testkit.NewHostileNode(t, testkit.HostileOptions{Reply: func(int) []string {
		return []string{"HTTP/1.1 415 Unsupported\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body}
	}})
	c, _, logs := logClient(t, node.URL(), nil)
	err := c.Deliver(context.Background(), sampleCall())
	var re *RejectedError
	if !errors.As(err, &re) || re.Code != 415 {
		t.Fatalf("Deliver = %v, want a 415 rejection", err)
	}
	lines := logLines(logs, "WARN", "node rejected message")
	if len(lines) != 1 {
		t.Fatalf("%d rejection records, want 1:\n%s", len(lines), logs)
	}
	var rec struct{ Body string }
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{rec.Body, re.Reason} {
		if !strings.HasPrefix(s, "[31mhost not allowed [0m  X-Injected: 1") || !strings.HasSuffix(s, "x [cut]") {
			t.Errorf("reason %q: want the body with control bytes as spaces, cut with a mark", s)
		}
		if strings.ContainsAny(s, "\x1b\r\n") || len(s) > snippetBytes+len(" [cut]") {
			t.Errorf("reason %q (%d bytes): control bytes or longer than %d", s, len(s), snippetBytes)
		}
	}
}
