package node

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// jsonBodyProfile is a second wire shape, registered by this test file alone to
// show that a shape is one file plus node.profile: both messages are POSTed to
// the node's root with the call as a JSON body. It is made up for the test, not
// a shape any node is known to accept.
const jsonBodyProfile = "test-json-body"

func init() { registerProfile(jsonBodyProfile, newJSONBodyProfile) }

type jsonBody struct {
	raw *rawProfile // reused for the checks and the identity values
	env profileEnv
}

type jsonCall struct{ request, response []byte }

func newJSONBodyProfile(env profileEnv) profile {
	return &jsonBody{raw: newRawProfile(env).(*rawProfile), env: env}
}

func (p *jsonBody) message(m *message, call *accesslog.APICall) (string, error) {
	if label, err := p.raw.message(m, call); err != nil {
		return label, err
	}
	body := func(v map[string]string) []byte {
		b, _ := json.Marshal(v)
		return b
	}
	m.ext = &jsonCall{
		request: body(map[string]string{
			"id": m.id, "method": call.Method, "host": m.fwdHost, "path": call.Path, "client_ip": m.fwdFor,
		}),
		response: body(map[string]string{"id": m.id, "status": m.status}),
	}
	m.method = "POST" // what the request message is sent as
	m.target = p.env.basePath + "/"
	return "", nil
}

func (p *jsonBody) appendMessage(b []byte, m *message, kind string) []byte {
	jc := m.ext.(*jsonCall)
	method, body := m.method, jc.request
	if kind == kindResponse {
		method, body = p.env.cfg.ResponseMethod, jc.response
	}
	b = appendHead(b, method, m.target, p.env.nodeHost)
	b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n"...)
	b = appendHeaders(b, sortedLines(staticHeaders(p.env.static)), m)
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// A second profile, registered from this file, is delivered by the real
// client unchanged: a 503 retried with backoff, a hang-up on a kept-alive
// connection resent on a new one, the connection pooled across calls, every
// resend byte for byte the same.
func TestSecondProfileDeliversThroughTheClient(t *testing.T) {
	t.Parallel()
	srv := newRawNode(t, func(n int) string {
		switch n {
		case 0:
			return "HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"
		case 1:
			return "" // hang up: the kept-alive connection is gone
		}
		return ok200
	})
	c, reg := testClient(t, srv.url()+"/base", func(c *Config) { c.Profile = jsonBodyProfile })
	first, second := sampleCall(), sampleCall()
	second.RequestID, second.Status = "second-call", 404
	for _, call := range []*accesslog.APICall{first, second} {
		if err := c.Deliver(context.Background(), call); err != nil {
			t.Fatalf("Deliver %s: %v", call.RequestID, err)
		}
	}

	msgs := srv.messages()
	if len(msgs) != 6 {
		t.Fatalf("got %d messages, want 6 (request three times, response, second pair): %q", len(msgs), msgs)
	}
	if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
		t.Errorf("resent request differs:\n%q\n%q\n%q", msgs[0], msgs[1], msgs[2])
	}
	head, body, _ := strings.Cut(msgs[2], "\r\n\r\n")
	if !strings.HasPrefix(head, "POST /base/ HTTP/1.1\r\nHost: "+srv.host()+"\r\nContent-Type: application/json\r\n") {
		t.Errorf("request head %q: want the test profile's shape", head)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || got["method"] != "GET" || got["path"] != first.Path || got["id"] != first.RequestID {
		t.Errorf("request body %q (%v): want the call as JSON", body, err)
	}
	for i, want := range map[int]string{3: `{"id":"` + first.RequestID + `","status":"200"}`, 5: `{"id":"second-call","status":"404"}`} {
		if !strings.HasPrefix(msgs[i], "POST /base/ HTTP/1.1\r\n") || !strings.HasSuffix(msgs[i], "\r\n\r\n"+want) {
			t.Errorf("response message %d = %q, want body %s", i, msgs[i], want)
		}
	}
	if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 1 {
		t.Errorf("retries_total = %v, want 1 (the 503; the hang-up is resent at once)", v)
	}
	if v := metricValue(t, reg, "apigw_connector_node_retries_total", map[string]string{"reason": "http_503"}); v != 1 {
		t.Errorf("retries_total{http_503} = %v, want 1", v)
	}
	if n := srv.connCount(); n != 2 {
		t.Errorf("%d connections, want 2 (one lost to the hang-up, then one kept for the rest)", n)
	}
}

// The raw profile is the default; node.profile accepts the registered names
// only and says which they are.
func TestProfileSetting(t *testing.T) {
	t.Parallel()
	if got := DefaultConfig().Profile; got != DefaultProfile || DefaultProfile != "raw" {
		t.Errorf("default profile %q, want raw", got)
	}
	if got := ProfileNames(); !slices.Contains(got, "raw") || !slices.IsSorted(got) {
		t.Errorf("ProfileNames() = %v, want sorted with raw", got)
	}
	tests := []struct {
		profile string
		ok      bool
	}{
		{"raw", true},
		{"", true}, // the default
		{jsonBodyProfile, true},
		{"Raw", false},
		{"multipart", false},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			cfg.URL = "http://127.0.0.1:5050"
			cfg.Profile = tt.profile
			err := cfg.Validate()
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an unknown profile")
			}
			for _, want := range []string{"node.profile", "APIGW_CONNECTOR_NODE_PROFILE", "raw", strconv.Quote(tt.profile)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %s", err, want)
				}
			}
		})
	}
}
