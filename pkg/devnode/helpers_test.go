package devnode

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// node is a devnode served over loopback for one test.
type node struct {
	*Server
	base   string
	client *http.Client
}

func startNode(t testing.TB, o Options, tweak ...func(*Server)) *node {
	t.Helper()
	s := New(o, nil, nil)
	for _, f := range tweak {
		f(s)
	}
	addr, err := s.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start devnode: %v", err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	n := &node{Server: s, base: "http://" + addr.String(), client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shut down devnode: %v", err)
		}
	})
	return n
}

// msg is one message to send; hdr values of "" delete the header, and extra holds
// repeated values.
type msg struct {
	method string
	path   string
	hdr    map[string]string
	extra  map[string][]string
	body   string
}

// requestHeaders are the contract's request message headers.
func requestHeaders(id string) map[string]string {
	return map[string]string{
		DefaultRequestIDHeader:        id,
		DefaultForwardedHostHeader:    "api.example.com",
		DefaultForwardedForHeader:     "203.0.113.7",
		DefaultConnectorTypeHeader:    "apigw-connector",
		DefaultConnectorVersionHeader: "0.1.0",
	}
}

func responseHeaders(id string, status string) map[string]string {
	h := requestHeaders(id)
	h[DefaultResponseCodeHeader] = status
	return h
}

func with(h map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func (n *node) send(t testing.TB, m msg) (int, string) {
	t.Helper()
	var body io.Reader = http.NoBody
	if m.body != "" {
		body = strings.NewReader(m.body)
	}
	req, err := http.NewRequest(m.method, n.base+m.path, body)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	for k, v := range m.hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	for k, vs := range m.extra {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := n.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", m.method, m.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return res.StatusCode, string(b)
}

// call sends a request message then its response message, both expected to be accepted.
func (n *node) call(t testing.TB, id, method, path, status string) {
	t.Helper()
	if code, body := n.send(t, msg{method: method, path: path, hdr: requestHeaders(id)}); code != http.StatusOK {
		t.Fatalf("request message %s %s: got %d %q, want 200", method, path, code, body)
	}
	if code, body := n.send(t, msg{method: http.MethodPost, path: path, hdr: responseHeaders(id, status)}); code != http.StatusOK {
		t.Fatalf("response message %s %s: got %d %q, want 200", method, path, code, body)
	}
}

func (n *node) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	code, body := n.send(t, msg{method: http.MethodGet, path: path})
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %q", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %s: %v\n%s", path, err, body)
	}
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
