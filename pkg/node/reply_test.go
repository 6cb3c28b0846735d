package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/devnodetest"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/devnode"
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

// A node that refuses a message for its attribution (devnode's admission
// lists, like a node's connector_info / host rejections) says why in the reply
// body; the rejection's log line and error keep that reason.
func TestRejectionByDevnodeKeepsItsReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   func(*devnode.Options)
		reason string // in the devnode's reply body
	}{
		{"connector type", func(o *devnode.Options) { o.AllowedConnectorTypes = []string{"layer7"} }, `connector type "apigw-connector" is not allowed`},
		{"host", func(o *devnode.Options) { o.AllowedHosts = []string{"api.example.com"} }, "abc123.execute-api.eu-west-1.amazonaws.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := devnode.DefaultOptions()
			tt.opts(&o)
			_, url := devnodetest.Start(t, o)
			c, reg, logs := logClient(t, url, nil)
			err := c.Deliver(context.Background(), sampleCall())
			var re *RejectedError
			if !errors.As(err, &re) || re.Code != http.StatusBadRequest || !strings.Contains(re.Reason, tt.reason) {
				t.Fatalf("Deliver = %v, want a 400 rejection naming %q", err, tt.reason)
			}
			lines := logLines(logs, "WARN", "node rejected message")
			if len(lines) != 1 {
				t.Fatalf("%d rejection records, want 1:\n%s", len(lines), logs)
			}
			var rec struct{ Body string }
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || !strings.Contains(rec.Body, tt.reason) {
				t.Errorf("log body %q (%v), want the node's reason %q", rec.Body, err, tt.reason)
			}
			if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 0 {
				t.Errorf("retries_total = %v, want 0: a rejection is not retried", v)
			}
		})
	}
}

// 403 is the node's "would block": the call is delivered, so its body is no
// rejection reason to log; it is drained and the connection kept.
func TestForbiddenWithBodyIsDeliveredNotLogged(t *testing.T) {
	t.Parallel()
	const body = "blocked by policy"
	srv := newWireServer(t, func(int, wireMsg) string {
		return "HTTP/1.1 403 Forbidden\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	})
	c, reg, logs := logClient(t, srv.url(), nil)
	for range 2 {
		if err := c.Deliver(context.Background(), sampleCall()); err != nil {
			t.Fatalf("Deliver with 403 replies: %v, want delivered", err)
		}
	}
	if got := logLines(logs, "WARN", ""); len(got) != 0 {
		t.Errorf("warnings for delivered calls:\n%s", strings.Join(got, "\n"))
	}
	if v := metricValue(t, reg, "apigw_connector_node_rejected_total", nil); v != 0 {
		t.Errorf("rejected_total = %v, want 0", v)
	}
	if n := srv.connCount(); n != 1 {
		t.Errorf("%d connections, want 1 (the 403 bodies drained, the connection reused)", n)
	}
}
