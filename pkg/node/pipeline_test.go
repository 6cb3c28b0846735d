package node

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/devnodetest"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// deliverAll delivers calls named prefix-0..n-1 from callers goroutines within
// a bounded time and returns their ids; every Deliver must succeed.
func deliverAll(t *testing.T, c *Client, prefix string, callers, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				call := sampleCall()
				call.RequestID = prefix + "-" + strconv.Itoa(i)
				ids[i] = call.RequestID
				if err := c.Deliver(ctx, call); err != nil {
					t.Errorf("Deliver %s: %v", call.RequestID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return ids
}

func startDevnode(t *testing.T, edit func(*devnode.Options)) (*devnode.Server, string) {
	t.Helper()
	opts := devnode.DefaultOptions()
	if edit != nil {
		edit(&opts)
	}
	return devnodetest.Start(t, opts)
}

// Many callers on pipelined connections: every call reaches devnode exactly
// once, request before response (devnode rejects a response without its request).
func TestPipelinedCallsAllDelivered(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{1, 2, DefaultPipelineDepth, MaxPipelineDepth} {
		t.Run("depth="+strconv.Itoa(depth), func(t *testing.T) {
			t.Parallel()
			dn, url := startDevnode(t, nil)
			c, reg := testClient(t, url, func(c *Config) { c.PipelineDepth = depth })
			ids := deliverAll(t, c, "pipe", 64, 2000)
			missing, repeated := dn.CheckDelivered(ids)
			if len(missing) > 0 || len(repeated) > 0 {
				t.Fatalf("missing %d (%v), repeated %d (%v)", len(missing), head(missing), len(repeated), head(repeated))
			}
			st := dn.Stats()
			if st.Completed != 2000 || st.Duplicates != 0 || len(st.Rejects) != 0 {
				t.Errorf("devnode stats %+v, want 2000 completed, no duplicates or rejects", st)
			}
			if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 0 {
				t.Errorf("retries_total = %v, want 0", v)
			}
		})
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// arrivals records, over all connections, the order in which a server read
// each call's messages.
type arrivals struct {
	mu   sync.Mutex
	seen map[string][]string // request id -> message kinds in arrival order
}

func (a *arrivals) add(id, kind string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[string][]string{}
	}
	a.seen[id] = append(a.seen[id], kind)
}

// check fails unless every call's first message was its request and its
// response came after.
func (a *arrivals) check(t *testing.T, ids []string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		kinds := a.seen[id]
		r := strings.Index(strings.Join(kinds, ","), "response")
		if len(kinds) == 0 || kinds[0] != "request" || r < 0 {
			t.Fatalf("call %s: node read %v, want its request first and then its response", id, kinds)
		}
	}
}

// A node with per-connection limits answers "Connection: close" after N
// messages of a connection and reads nothing more there; the messages
// pipelined behind are lost on the wire. They are sent again, each call's
// request still before its response.
func TestPipelineNodeClosesAfterN(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3, 7} {
		t.Run("close after "+strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			var got arrivals
			type connKey struct{}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				count := r.Context().Value(connKey{}).(*atomic.Int64)
				kind := "request"
				if r.Header.Get("X-Wallarm-Response-Code") != "" {
					kind = "response"
				}
				got.add(r.Header.Get("X-Wallarm-Request-Id"), kind)
				if count.Add(1)%int64(n) == 0 {
					w.Header().Set("Connection", "close")
				}
			}))
			srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, connKey{}, new(atomic.Int64))
			}
			srv.Start()
			t.Cleanup(srv.Close)
			c, _ := testClient(t, srv.URL, func(c *Config) { c.PipelineDepth = DefaultPipelineDepth })
			ids := deliverAll(t, c, "limit", 32, 600)
			got.check(t, ids)
		})
	}
}

// A node that closes silently after N requests of a connection, with pipelined
// requests unanswered: nothing is lost.
func TestPipelineNodeClosesSilently(t *testing.T) {
	t.Parallel()
	var got arrivals
	node := testkit.NewHostileNode(t, testkit.HostileOptions{CloseAfter: 3})
	c, _ := testClient(t, node.URL(), func(c *Config) { c.PipelineDepth = DefaultPipelineDepth })
	ids := deliverAll(t, c, "silent", 32, 400)
	for _, h := range node.Heads() {
		id, kind := "", "request"
		for _, l := range strings.Split(h, "\n") {
			name, v, _ := strings.Cut(strings.TrimSpace(l), ":")
			switch strings.ToLower(name) {
			case "x-wallarm-request-id":
				id = strings.TrimSpace(v)
			case "x-wallarm-response-code":
				kind = "response"
			}
		}
		got.add(id, kind)
	}
	got.check(t, ids)
}

// A caller that leaves while its message is in a pipeline does not take the
// connection's replies out of step: the message behind gets its own reply.
func TestAbandonedPipelinedMessageKeepsRepliesInStep(t *testing.T) {
	t.Parallel()
	node := testkit.NewHostileNode(t, testkit.HostileOptions{
		Gap: 150 * time.Millisecond,
		Reply: func(n int) []string {
			if n == 0 {
				return []string{"", testkit.Reply503} // late, and a refusal
			}
			return []string{testkit.Reply200}
		},
	})
	c, reg := testClient(t, node.URL(), func(c *Config) {
		c.MaxConnections = 1
		c.PipelineDepth = DefaultPipelineDepth
	})
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		call := sampleCall()
		call.RequestID = "abandoned"
		first <- c.Deliver(ctx, call)
	}()
	for node.Requests() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := sampleCall()
	call.RequestID = "behind"
	if err := c.Deliver(ctx, call); err != nil {
		t.Fatalf("Deliver behind: %v", err)
	}
	if err := <-first; err == nil {
		t.Errorf("the abandoned Deliver returned nil, want its context's error")
	}
	if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 0 {
		t.Errorf("retries_total = %v, want 0: the 503 for the abandoned message was read as another's", v)
	}
	if n := node.Conns(); n != 1 {
		t.Errorf("node saw %d connections, want 1 (the connection stays usable)", n)
	}
}

// A message pipelined behind another has its own reply timeout, counted from
// its own send: the read deadline follows the head of the connection's queue
// (it is moved before a read that may wait, not after every reply). Here the
// second request is answered after the first one's deadline would have passed,
// and before its own.
func TestPipelinedMessageKeepsItsOwnReplyTimeout(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	idOf := func(m wireMsg) string {
		for _, h := range m.Headers {
			if v, ok := strings.CutPrefix(h, "X-Wallarm-Request-Id: "); ok {
				return v
			}
		}
		return ""
	}
	srv := newWireServer(t, func(_ int, m wireMsg) string {
		if strings.HasPrefix(m.Line, "GET ") { // the request messages
			switch idOf(m) {
			case "first":
				time.Sleep(600 * time.Millisecond) // answered at 0.6 s
			case "second":
				time.Sleep(600 * time.Millisecond) // read at 0.6 s, answered at 1.2 s
			}
		}
		return ok200
	})
	c, reg := testClient(t, srv.url(), func(c *Config) {
		c.ReplyTimeout = timeout
		c.MaxConnections = 1
		c.PipelineDepth = 2
		c.Concurrency = 2
	})
	errs := make(chan error, 2)
	for i, id := range []string{"first", "second"} {
		if i > 0 {
			time.Sleep(400 * time.Millisecond) // sent at 0.4 s, behind the first: its deadline is 1.4 s
		}
		call := sampleCall()
		call.RequestID = id
		go func() { errs <- c.Deliver(context.Background(), call) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 0 {
		t.Errorf("retries_total = %v, want 0: the second request timed out at the first one's deadline", v)
	}
}
