package node

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// logClient is testClient with its log (JSON, all levels) kept in buf.
func logClient(t *testing.T, url string, edit func(*Config)) (*Client, *prometheus.Registry, *testkit.SyncBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.ConnectorVersion = "1.0.0-test"
	cfg.Retry.InitialBackoff = time.Millisecond
	cfg.Retry.MaxBackoff = 20 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	buf := new(testkit.SyncBuffer)
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, reg, slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c, reg, buf
}

// logLines returns the log records at level whose message contains text.
func logLines(buf *testkit.SyncBuffer, level, text string) []string {
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `"level":"`+level+`"`) && strings.Contains(l, text) {
			out = append(out, l)
		}
	}
	return out
}

// A node.url naming another service's port is named once, clearly; the node
// is not up (readiness) and delivery keeps retrying.
func TestReplyThatIsNotHTTPIsNamedOnce(t *testing.T) {
	t.Parallel()
	none := func(int) []string { return nil }
	tests := []struct {
		name string
		opts testkit.HostileOptions
	}{
		{"SSH banner", testkit.HostileOptions{Banner: "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n", NoRead: true, Reply: none}},
		{"SMTP", testkit.HostileOptions{Banner: "220 mail.example.com ESMTP Postfix\r\n",
			Reply: func(int) []string { return []string{"502 5.5.2 Error: command not recognized\r\n"} }}},
		{"binary garbage, no line end", testkit.HostileOptions{NoRead: true,
			Reply: func(int) []string { return []string{"\x00\x01\xfe\xff\x16\x03"} }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := testkit.NewHostileNode(t, tt.opts)
			// A reply timeout far above the test's bound: garbage must be seen at once.
			c, reg, logs := logClient(t, node.URL(), func(c *Config) { c.ReplyTimeout = 30 * time.Second })
			c.setUp(true) // as if it had answered before
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			defer cancel()
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.Deliver(ctx, sampleCall()); !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Deliver = %v, want the deadline (retrying until then)", err)
					}
				}()
			}
			wg.Wait()
			if v := metricValue(t, reg, "apigw_connector_node_retries_total", map[string]string{"reason": "not_http"}); v < 8 {
				t.Errorf("retries_total{not_http} = %v, want retries to go on", v)
			}
			want := "the node at " + node.Addr() + " answered something that is not HTTP: check node.url's port"
			if got := logLines(logs, "ERROR", want); len(got) != 1 {
				t.Errorf("%d error records naming it, want 1:\n%s", len(got), logs)
			}
			if got := logLines(logs, "WARN", "not_http"); len(got) != 0 {
				t.Errorf("%d warnings per attempt, want none:\n%s", len(got), strings.Join(got, "\n"))
			}
			if c.Up() {
				t.Error("Up() = true, want false: readiness must not report a node that does not speak HTTP")
			}
			if err := c.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "not HTTP: check node.url's port") {
				t.Errorf("Ready = %v, want it to name the wrong port", err)
			}
			if err := c.Probe(context.Background()); err == nil {
				t.Error("Probe = nil, want an error")
			}
			if got := logLines(logs, "ERROR", "not HTTP"); len(got) != 1 {
				t.Errorf("after a probe: %d error records, want still 1", len(got))
			}
		})
	}
}
