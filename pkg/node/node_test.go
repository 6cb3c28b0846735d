package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// headerMap turns wire header lines into a map, failing on repeated names.
func headerMap(t *testing.T, m wireMsg) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range m.Headers {
		k, v, ok := strings.Cut(h, ": ")
		if !ok {
			t.Fatalf("malformed header line %q", h)
		}
		if _, dup := out[k]; dup {
			t.Fatalf("header %q sent twice", k)
		}
		out[k] = v
	}
	return out
}

func TestMessageShapes(t *testing.T) {
	t.Parallel()
	const (
		id   = "c0ffee00-1111-2222-3333-444455556666"
		host = "abc123.execute-api.eu-west-1.amazonaws.com"
	)
	common := map[string]string{
		"Host":                        host,
		"X-Wallarm-Request-Id":        id,
		"X-Wallarm-Forwarded-Host":    host,
		"X-Wallarm-Forwarded-For":     "203.0.113.7",
		"X-Wallarm-Connector-Type":    "apigw-connector",
		"X-Wallarm-Connector-Version": "1.0.0-test",
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<none>" {
				delete(out, kv[i])
			} else {
				out[kv[i]] = kv[i+1]
			}
		}
		return out
	}
	tests := []struct {
		name             string
		edit             func(*Config)
		call             func(*accesslog.APICall)
		reqLine, resLine string
		req, res         map[string]string
		hangUpFirst      bool // the first attempt gets no reply: the request is sent twice
	}{
		{
			name:    "defaults, GET",
			reqLine: "GET /prod/users/42 HTTP/1.1", resLine: "POST /prod/users/42 HTTP/1.1",
			// net/http never sends a length on a body-less GET/HEAD: no length means no body.
			req: with(common, "User-Agent", "curl/8.5.0"),
			res: with(common, "X-Wallarm-Response-Code", "200", "Content-Length", "0"),
		},
		{
			name: "POST with user agent dash, source ip with port, 404",
			call: func(c *accesslog.APICall) {
				c.Method, c.UserAgent, c.SourceIP, c.Status = "POST", "-", "203.0.113.7:51234", 404
			},
			reqLine: "POST /prod/users/42 HTTP/1.1", resLine: "POST /prod/users/42 HTTP/1.1",
			req: with(common, "Content-Length", "0"),
			res: with(common, "X-Wallarm-Response-Code", "404", "Content-Length", "0"),
		},
		{
			name:    "DELETE, no source ip, no user agent",
			call:    func(c *accesslog.APICall) { c.Method, c.SourceIP, c.UserAgent = "DELETE", "", "" },
			reqLine: "DELETE /prod/users/42 HTTP/1.1", resLine: "POST /prod/users/42 HTTP/1.1",
			req: with(common, "Content-Length", "0", "X-Wallarm-Forwarded-For", UnknownSourceIP),
			res: with(common, "X-Wallarm-Response-Code", "200", "Content-Length", "0", "X-Wallarm-Forwarded-For", UnknownSourceIP),
		},
		{
			name: "host mode node, prefix, configured names, extra headers, PUT response method",
			edit: func(c *Config) {
				c.HostMode = HostModeNode
				c.PathPrefix = "/apigw/"
				c.ResponseMethod = "PUT"
				c.ConnectorType = "aws-apigw"
				c.Headers = HeaderNames{
					RequestID: "x-request-id", ForwardedHost: "X-Original-Host", ForwardedFor: "X-Real-Ip",
					ConnectorType: "X-Conn-Type", ConnectorVersion: "X-Conn-Version", ResponseCode: "X-Status",
				}
				c.ExtraHeaders = map[string]string{"x-wallarm-application": "42"}
			},
			call:    func(c *accesslog.APICall) { c.SourceIP = "[2001:db8::1]:443" },
			reqLine: "GET /apigw/prod/users/42 HTTP/1.1", resLine: "PUT /apigw/prod/users/42 HTTP/1.1",
			req: map[string]string{
				"Host": "<node>", "User-Agent": "curl/8.5.0", "X-Request-Id": id, "X-Original-Host": host,
				"X-Real-Ip": "2001:db8::1", "X-Conn-Type": "aws-apigw", "X-Conn-Version": "1.0.0-test",
				"X-Wallarm-Application": "42",
			},
			res: map[string]string{
				"Host": "<node>", "X-Request-Id": id, "X-Original-Host": host, "Content-Length": "0",
				"X-Real-Ip": "2001:db8::1", "X-Conn-Type": "aws-apigw", "X-Conn-Version": "1.0.0-test",
				"X-Wallarm-Application": "42", "X-Status": "200",
			},
		},
		{
			name: "path sent as is, only invalid bytes escaped",
			call: func(c *accesslog.APICall) {
				c.Method = "PATCH"
				c.Path = "/prod/items/{id}/a b/%2F/caf\u00e9/50%/q?x#f/;v=1:@!$&'()*+,"
			},
			reqLine: "PATCH /prod/items/%7Bid%7D/a%20b/%2F/caf%C3%A9/50%25/q%3Fx%23f/;v=1:@!$&'()*+, HTTP/1.1",
			resLine: "POST /prod/items/%7Bid%7D/a%20b/%2F/caf%C3%A9/50%25/q%3Fx%23f/;v=1:@!$&'()*+, HTTP/1.1",
			req:     with(common, "User-Agent", "curl/8.5.0", "Content-Length", "0"),
			res:     with(common, "X-Wallarm-Response-Code", "200", "Content-Length", "0"),
		},
		{
			name: "double slash path, control bytes in user agent",
			call: func(c *accesslog.APICall) {
				c.Path = "//x"
				c.UserAgent = "evil\r\nX-Injected: 1"
			},
			reqLine: "GET //x HTTP/1.1", resLine: "POST //x HTTP/1.1",
			req: with(common, "User-Agent", "evil  X-Injected: 1"),
			res: with(common, "X-Wallarm-Response-Code", "200", "Content-Length", "0"),
		},
		{
			name:    "long user agent",
			call:    func(c *accesslog.APICall) { c.UserAgent = strings.Repeat("u", 5000) },
			reqLine: "GET /prod/users/42 HTTP/1.1", resLine: "POST /prod/users/42 HTTP/1.1",
			req: with(common, "User-Agent", strings.Repeat("u", 5000)),
			res: with(common, "X-Wallarm-Response-Code", "200", "Content-Length", "0"),
		},
		{
			name:        "request retried after hang-up",
			hangUpFirst: true,
			reqLine:     "GET /prod/users/42 HTTP/1.1", resLine: "POST /prod/users/42 HTTP/1.1",
			req: with(common, "User-Agent", "curl/8.5.0"),
			res: with(common, "X-Wallarm-Response-Code", "200", "Content-Length", "0"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newWireServer(t, func(n int, _ wireMsg) string {
				if n == 0 && tt.hangUpFirst {
					return ""
				}
				return ok200
			})
			c, _ := testClient(t, srv.url(), tt.edit)
			call := sampleCall()
			if tt.call != nil {
				tt.call(call)
			}
			if err := c.Deliver(context.Background(), call); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			msgs := srv.messages()
			if tt.hangUpFirst && len(msgs) == 3 {
				if msgs[0].Line != msgs[1].Line || !maps.Equal(headerMap(t, msgs[0]), headerMap(t, msgs[1])) {
					t.Errorf("resent request differs: %v vs %v", msgs[0], msgs[1])
				}
				msgs = msgs[1:]
			}
			if len(msgs) != 2 {
				t.Fatalf("got %d messages, want 2: %+v", len(msgs), msgs)
			}
			nodeHost := strings.TrimPrefix(srv.url(), "http://")
			for i, want := range []struct {
				line string
				hdr  map[string]string
			}{{tt.reqLine, tt.req}, {tt.resLine, tt.res}} {
				if msgs[i].Line != want.line {
					t.Errorf("message %d line = %q, want %q", i, msgs[i].Line, want.line)
				}
				exp := maps.Clone(want.hdr)
				for k, v := range exp {
					if v == "<node>" {
						exp[k] = nodeHost
					}
				}
				if got := headerMap(t, msgs[i]); !maps.Equal(got, exp) {
					t.Errorf("message %d headers\n got %v\nwant %v", i, got, exp)
				}
			}
		})
	}
}

func TestRetryUntilRecovery(t *testing.T) {
	t.Parallel()
	srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("node busy"))
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	c, reg := testClient(t, srv.URL, nil)
	if err := c.Deliver(context.Background(), sampleCall()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got, want := strings.Join(srv.kinds(), ","), "req,req,req,req,resp"; got != want {
		t.Errorf("messages = %s, want %s", got, want)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"apigw_connector_node_retries_total", map[string]string{"reason": "http_503"}, 3},
		{"apigw_connector_node_messages_sent_total", map[string]string{"kind": "request", "code": "503"}, 3},
		{"apigw_connector_node_messages_sent_total", map[string]string{"kind": "request", "code": "200"}, 1},
		{"apigw_connector_node_messages_sent_total", map[string]string{"kind": "response", "code": "200"}, 1},
		{"apigw_connector_node_delivery_duration_seconds", nil, 1},
		{"apigw_connector_node_calls_in_flight", nil, 0},
		{"apigw_connector_node_up", nil, 1},
		{"apigw_connector_node_rejected_total", nil, 0},
	}
	for _, ck := range checks {
		if v := metricValue(t, reg, ck.name, ck.labels); v != ck.want {
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, v, ck.want)
		}
	}
	if !c.Up() {
		t.Error("Up() = false after delivery")
	}
}

func TestRetryableFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fail   func(w http.ResponseWriter, r *http.Request)
		reason string
	}{
		{"stall past reply timeout", func(w http.ResponseWriter, r *http.Request) {
			select { // until the client gives up on this attempt
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}, "timeout"},
		{"connection reset mid-request", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST instead of FIN
				}
				conn.Close()
			}
		}, "connection_reset"},
		{"half reply then close", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Le")
				_ = buf.Flush()
				conn.Close()
			}
		}, "protocol"},
		{"408", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusRequestTimeout) }, "http_408"},
		{"429", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, "http_429"},
		{"500 node reply timeout", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, "http_500"},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, "http_302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 0 {
					tt.fail(w, r)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			c, reg := testClient(t, srv.URL, func(c *Config) { c.ReplyTimeout = 200 * time.Millisecond })
			if err := c.Deliver(context.Background(), sampleCall()); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if got, want := strings.Join(srv.kinds(), ","), "req,req,resp"; got != want {
				t.Errorf("messages = %s, want %s", got, want)
			}
			if v := metricValue(t, reg, "apigw_connector_node_retries_total", map[string]string{"reason": tt.reason}); v != 1 {
				t.Errorf("retries_total{reason=%s} = %v, want 1", tt.reason, v)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	// Backoff alone would retry within 1ms.
	c, _ := testClient(t, srv.URL, func(c *Config) { c.Retry.InitialBackoff, c.Retry.MaxBackoff = time.Millisecond, time.Millisecond })
	if err := c.Deliver(context.Background(), sampleCall()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	rec := srv.recorded()
	if len(rec) != 3 {
		t.Fatalf("got %d messages, want 3", len(rec))
	}
	if gap := rec[1].At.Sub(rec[0].At); gap < 900*time.Millisecond {
		t.Errorf("retry came %v after a Retry-After: 1 reply, want >= 1s", gap)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"99999999", maxRetryAfter, true},
		{"Sat, 01 Mar 2025 12:00:07 GMT", 7 * time.Second, true},
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	c, _ := testClient(t, "http://127.0.0.1:1", func(c *Config) {
		c.Retry = RetryConfig{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2}
	})
	for attempt, ceil := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		ceil *= time.Millisecond
		var top time.Duration
		for range 200 {
			d := c.backoff(attempt, 0, false)
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: backoff %v outside [0, %v]", attempt, d, ceil)
			}
			top = max(top, d)
		}
		if top < ceil/2 {
			t.Errorf("attempt %d: largest of 200 backoffs %v, want spread up to %v", attempt, top, ceil)
		}
	}
	if d := c.backoff(60, 0, false); d > time.Second {
		t.Errorf("backoff after many attempts %v > max", d)
	}
	if d := c.backoff(0, 3*time.Second, true); d != 3*time.Second {
		t.Errorf("backoff with Retry-After 3s = %v", d)
	}
}

func TestPermanentRejection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		reqCode   int
		resCode   int
		wantMsg   string
		wantCode  int
		wantKinds string
	}{
		{"request 400", 400, 200, kindRequest, 400, "req"},
		{"request 415", 415, 200, kindRequest, 415, "req"},
		{"request 404", 404, 200, kindRequest, 404, "req"},
		{"request 401", 401, 200, kindRequest, 401, "req"},
		{"response 400 unmatched", 200, 400, kindResponse, 400, "req,resp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				code := tt.reqCode
				if r.Header.Get("X-Wallarm-Response-Code") != "" {
					code = tt.resCode
				}
				w.WriteHeader(code)
				_, _ = w.Write([]byte(strings.Repeat("reason ", 200)))
			})
			c, reg := testClient(t, srv.URL, nil)
			err := c.Deliver(context.Background(), sampleCall())
			var re *RejectedError
			if !errors.Is(err, ErrRejected) || !errors.As(err, &re) {
				t.Fatalf("Deliver = %v, want ErrRejected", err)
			}
			if re.Code != tt.wantCode || re.Message != tt.wantMsg || re.RequestID != sampleCall().RequestID {
				t.Errorf("rejection = %+v, want code %d message %s", re, tt.wantCode, tt.wantMsg)
			}
			if body, ok := strings.CutSuffix(re.Reason, " [cut]"); !ok || len(body) != snippetBytes || !strings.HasPrefix(body, "reason ") {
				t.Errorf("body snippet = %q (%d bytes), want the first %d bytes, trimmed, and the cut mark", re.Reason, len(re.Reason), snippetBytes)
			}
			if got := strings.Join(srv.kinds(), ","); got != tt.wantKinds {
				t.Errorf("messages = %s, want %s (no retry)", got, tt.wantKinds)
			}
			if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 0 {
				t.Errorf("retries_total = %v, want 0", v)
			}
			if v := metricValue(t, reg, "apigw_connector_node_rejected_total", map[string]string{"code": statusText(tt.wantCode)}); v != 1 {
				t.Errorf("rejected_total = %v, want 1", v)
			}
		})
	}
}

func TestForbiddenIsDelivered(t *testing.T) {
	t.Parallel()
	srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
	c, _ := testClient(t, srv.URL, nil)
	if err := c.Deliver(context.Background(), sampleCall()); err != nil {
		t.Fatalf("Deliver with 403 replies: %v, want nil (would block = delivered)", err)
	}
	if got := strings.Join(srv.kinds(), ","); got != "req,resp" {
		t.Errorf("messages = %s", got)
	}
}

func TestOnlyFailedMessageResent(t *testing.T) {
	t.Parallel()
	var failedOnce atomic.Bool
	srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Wallarm-Response-Code") != "" && failedOnce.CompareAndSwap(false, true) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	c, reg := testClient(t, srv.URL, nil)
	if err := c.Deliver(context.Background(), sampleCall()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got, want := strings.Join(srv.kinds(), ","), "req,resp,resp"; got != want {
		t.Errorf("messages = %s, want %s", got, want)
	}
	rec := srv.recorded()
	for _, r := range rec {
		if r.RequestID != sampleCall().RequestID {
			t.Errorf("message with request id %q", r.RequestID)
		}
	}
	if v := metricValue(t, reg, "apigw_connector_node_messages_sent_total", map[string]string{"kind": "response", "code": "503"}); v != 1 {
		t.Errorf("messages_sent_total{response,503} = %v, want 1", v)
	}
}

func TestContextEndsDuringOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply func(w http.ResponseWriter, r *http.Request)
	}{
		{"while waiting to retry", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }},
		{"while the node stalls", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hit := make(chan struct{}, 1)
			srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				select {
				case hit <- struct{}{}:
				default:
				}
				tt.reply(w, r)
			})
			// Waits long enough that only the context can end them.
			c, _ := testClient(t, srv.URL, func(c *Config) {
				c.ReplyTimeout, c.Retry.InitialBackoff, c.Retry.MaxBackoff = time.Minute, time.Hour, time.Hour
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Deliver(ctx, sampleCall()) }()
			<-hit
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) || errors.Is(err, ErrRejected) {
					t.Fatalf("Deliver = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Deliver did not return after its context ended")
			}
		})
	}
}

func TestConnectionCloseReplies(t *testing.T) {
	t.Parallel()
	srv := newWireServer(t, func(n int, m wireMsg) string {
		if n%3 == 0 {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	})
	c, reg := testClient(t, srv.url(), nil)
	for range 10 {
		if err := c.Deliver(context.Background(), sampleCall()); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if n := len(srv.messages()); n != 20 {
		t.Errorf("server saw %d messages, want 20", n)
	}
	if v := metricValue(t, reg, "apigw_connector_node_retries_total", nil); v != 0 {
		t.Errorf("retries_total = %v, want 0", v)
	}
}

func TestConnectionRefusedCountsAndWaits(t *testing.T) {
	t.Parallel()
	c, reg := testClient(t, closedURL(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Deliver(ctx, sampleCall()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver = %v, want context.DeadlineExceeded", err)
	}
	if v := metricValue(t, reg, "apigw_connector_node_errors_total", map[string]string{"reason": "connection_refused"}); v < 1 {
		t.Errorf("errors_total{connection_refused} = %v, want >= 1", v)
	}
	if c.Up() {
		t.Error("Up() = true with nothing listening")
	}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	healthy := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/wallarm-external-health" {
			w.WriteHeader(404)
		}
	})
	sick := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	closed := closedURL(t)

	tests := []struct {
		name         string
		url          string
		health       string
		wantOK       bool
		wantNotReady bool
	}{
		{"health 200", healthy.URL, "/wallarm-external-health", true, false},
		{"health 503", sick.URL, "/wallarm-external-health", false, true},
		{"tcp only", sick.URL, "", true, false},
		{"nothing listening", closed, "/wallarm-external-health", false, false},
		{"nothing listening tcp", closed, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, reg := testClient(t, tt.url, func(c *Config) { c.HealthPath = tt.health })
			err := c.Probe(context.Background())
			if (err == nil) != tt.wantOK || c.Up() != tt.wantOK || errors.Is(err, ErrNotReady) != tt.wantNotReady {
				t.Fatalf("Probe = %v, Up = %v; want ok=%v, ErrNotReady=%v", err, c.Up(), tt.wantOK, tt.wantNotReady)
			}
			want := 0.0
			if tt.wantOK {
				want = 1
			}
			if v := metricValue(t, reg, "apigw_connector_node_up", nil); v != want {
				t.Errorf("up gauge = %v, want %v", v, want)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		filters  FilterConfig
		method   string
		status   int
		forwards bool
	}{
		{"default forwards all", FilterConfig{}, "OPTIONS", 500, true},
		{"skip options", FilterConfig{SkipMethods: []string{"options", "HEAD"}}, "OPTIONS", 200, false},
		{"skip head", FilterConfig{SkipMethods: []string{"options", "HEAD"}}, "HEAD", 200, false},
		{"get not skipped", FilterConfig{SkipMethods: []string{"OPTIONS"}}, "GET", 200, true},
		{"2xx kept", FilterConfig{Statuses: []string{"2xx", "404"}}, "GET", 204, true},
		{"404 kept", FilterConfig{Statuses: []string{"2xx", "404"}}, "GET", 404, true},
		{"403 dropped", FilterConfig{Statuses: []string{"2xx", "404"}}, "GET", 403, false},
		{"5XX upper", FilterConfig{Statuses: []string{"5XX"}}, "GET", 503, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := testClient(t, "http://127.0.0.1:1", func(c *Config) { c.Filters = tt.filters })
			call := sampleCall()
			call.Method, call.Status = tt.method, tt.status
			if got := c.Filter(call); got != tt.forwards {
				t.Errorf("Filter = %v, want %v", got, tt.forwards)
			}
		})
	}
}

func TestEscapePath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"noslash", "/noslash"},
		{"/a/b", "/a/b"},
		{"/users/{id}", "/users/%7Bid%7D"},
		{"/a%20b/%7e", "/a%20b/%7e"},
		{"/100%", "/100%25"},
		{"/%zz", "/%25zz"},
		{"/a b", "/a%20b"},
		{"/q?x=1", "/q%3Fx=1"},
		{"/\x00\x7f", "/%00%7F"},
		{"/ü", "/%C3%BC"},
		{"/[v]|^`\"<>\\", "/%5Bv%5D%7C%5E%60%22%3C%3E%5C"},
	}
	for _, tt := range tests {
		if got := escapePath(tt.in); got != tt.want {
			t.Errorf("escapePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBareIP(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"203.0.113.7:8080", "203.0.113.7"},
		{"2001:db8::1", "2001:db8::1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"fe80::1%eth0", "fe80::1"},
		{"198.51.100.1, 10.0.0.1", "198.51.100.1"},
		{"", UnknownSourceIP},
		{"-", UnknownSourceIP},
		{"test-invoke-source-ip", UnknownSourceIP},
	}
	for _, tt := range tests {
		if got := bareIP(tt.in); got != tt.want {
			t.Errorf("bareIP(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	want := map[int]replyClass{
		200: accepted, 201: accepted, 204: accepted, 403: accepted,
		400: rejected, 401: rejected, 404: rejected, 413: rejected, 415: rejected, 499: rejected,
		408: retryable, 429: retryable, 500: retryable, 502: retryable, 503: retryable, 504: retryable,
		301: retryable, 100: retryable,
	}
	for code, cls := range want {
		if got := classifyStatus(code); got != cls {
			t.Errorf("classifyStatus(%d) = %v, want %v", code, got, cls)
		}
	}
}

// Calls that cannot be sent as they are fail at once, counted by reason, with
// nothing sent: above all, never the node's own address as the API's host.
func TestNotSendableCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, reason string
		edit         func(*Config)
		call         func(*accesslog.APICall)
	}{
		{"no host", "no_host", nil, func(c *accesslog.APICall) { c.Host = "" }},
		{"no host, host mode node", "no_host", func(c *Config) { c.HostMode = HostModeNode }, func(c *accesslog.APICall) { c.Host = "" }},
		{"invalid host", "invalid_host", nil, func(c *accesslog.APICall) { c.Host = "bad host/x" }},
		{"no id", "no_request_id", nil, func(c *accesslog.APICall) { c.RequestID, c.NodeID = "", "" }},
		{"invalid method", "invalid_method", nil, func(c *accesslog.APICall) { c.Method = "GE T" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newWireServer(t, nil)
			c, reg := testClient(t, srv.url(), tt.edit)
			call := sampleCall()
			tt.call(call)
			err := c.Deliver(context.Background(), call)
			var re *RejectedError
			if !errors.As(err, &re) || re.Code != 0 || !errors.Is(err, ErrRejected) {
				t.Fatalf("Deliver = %v, want a not-sendable RejectedError", err)
			}
			if n := len(srv.messages()); n != 0 {
				t.Errorf("sent %d messages, want none", n)
			}
			if v := metricValue(t, reg, "apigw_connector_node_unsendable_total", map[string]string{"reason": tt.reason}); v != 1 {
				t.Errorf("unsendable_total{reason=%s} = %v, want 1", tt.reason, v)
			}
			if v := metricValue(t, reg, "apigw_connector_node_rejected_total", map[string]string{"code": "invalid"}); v != 1 {
				t.Errorf("rejected_total{code=invalid} = %v, want 1", v)
			}
		})
	}
}

// The id header is never empty and ids that differ only in bytes a header
// cannot carry stay different.
func TestRequestIDHeaderValue(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	tests := []struct{ id, want string }{
		{"c0ffee00-1111-2222-3333-444455556666", "c0ffee00-1111-2222-3333-444455556666"},
		{"Ab+/=_.~", "Ab+/=_.~"},
		{"\x01\x02", "%01%02"},
		{" ", "%20"},
		{"\t\r\n", "%09%0D%0A"},
		{" a ", "%20a%20"},
		{"a\x01", "a%01"},
		{"a%01", "a%2501"},
		{"caf\u00e9", "caf%C3%A9"},
	}
	srv := newRecordingServer(t, func(int, http.ResponseWriter, *http.Request) {})
	c, _ := testClient(t, srv.URL, nil)
	for _, tt := range tests {
		call := sampleCall()
		call.NodeID = tt.id
		if err := c.Deliver(context.Background(), call); err != nil {
			t.Fatalf("Deliver(id %q): %v", tt.id, err)
		}
		rec := srv.recorded()
		last := rec[len(rec)-2:]
		if last[0].RequestID != tt.want || last[1].RequestID != tt.want {
			t.Errorf("id %q sent as %q/%q, want %q", tt.id, last[0].RequestID, last[1].RequestID, tt.want)
		}
	}
	seen := map[string]string{}
	for _, id := range []string{"\x01", "\x02", " ", "\t", "%01", "%20", long, long + "y", long + "z", long[:255] + "\x01", "a", "a "} {
		v := encodeID(id)
		if v == "" || len(v) > maxIDBytes {
			t.Errorf("encodeID(%q) = %q: empty or longer than %d", id, v, maxIDBytes)
		}
		for i := 0; i < len(v); i++ {
			if v[i] <= ' ' || v[i] >= 0x7f {
				t.Errorf("encodeID(%q) = %q has byte %#x", id, v, v[i])
			}
		}
		if prev, dup := seen[v]; dup {
			t.Errorf("ids %q and %q both map to %q", prev, id, v)
		}
		seen[v] = id
	}
}

func TestRejectedErrorText(t *testing.T) {
	t.Parallel()
	e := &RejectedError{RequestID: "r1", Message: kindResponse, Code: 415, Reason: "host not allowed"}
	if got := e.Error(); got != `node rejected response message of call "r1" with status 415: "host not allowed"` {
		t.Errorf("Error() = %s", got)
	}
	wrapped := errors.Join(errors.New("batch"), e)
	if !errors.Is(wrapped, ErrRejected) {
		t.Error("wrapped RejectedError does not match ErrRejected")
	}
}

// Concurrent deliveries share one bounded pool and pair their own messages.
func TestConcurrentDeliveriesBoundedPool(t *testing.T) {
	t.Parallel()
	var conns, busy, maxBusy atomic.Int64
	srv := newRecordingServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		now := busy.Add(1)
		defer busy.Add(-1)
		for old := maxBusy.Load(); now > old && !maxBusy.CompareAndSwap(old, now); old = maxBusy.Load() {
		}
		time.Sleep(time.Millisecond) // let callers pile up on the pool
		if n%11 == 5 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	const maxConns, callers, perCaller = 4, 32, 10
	c, reg := testClient(t, srv.URL, func(c *Config) { c.MaxConnections = maxConns })
	var wg sync.WaitGroup
	errs := make(chan error, callers*perCaller)
	for g := range callers {
		wg.Go(func() {
			for i := range perCaller {
				call := sampleCall()
				call.RequestID = fmt.Sprintf("call-%d-%d", g, i)
				call.Status = 200 + i
				errs <- c.Deliver(context.Background(), call)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	// Every call's response message follows its accepted request message.
	state := map[string]string{}
	for _, r := range srv.recorded() {
		switch {
		case r.ResponseCode == "" && state[r.RequestID] == "":
			state[r.RequestID] = "req"
		case r.ResponseCode == "" && state[r.RequestID] == "req": // request retried after 503
		case r.ResponseCode != "" && state[r.RequestID] != "":
			state[r.RequestID] = "resp"
		default:
			t.Fatalf("unexpected message order for %s: %+v", r.RequestID, r)
		}
	}
	for id, s := range state {
		if s != "resp" {
			t.Errorf("call %s ended in state %s", id, s)
		}
	}
	if len(state) != callers*perCaller {
		t.Errorf("%d calls seen, want %d", len(state), callers*perCaller)
	}
	if n := maxBusy.Load(); n > maxConns {
		t.Errorf("node served %d messages at once, want at most node.max_connections = %d", n, maxConns)
	}
	if n := conns.Load(); n >= callers {
		t.Errorf("opened %d connections for %d callers: keep-alive connections not reused (errors: %v)",
			n, callers, metricValue(t, reg, "apigw_connector_node_errors_total", nil))
	}
}

// A reply whose body stalls is abandoned after the reply timeout; its status stands.
func TestStalledReplyBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  string
		wantErr error
	}{
		{"accepted", "200 OK", nil},
		{"rejected", "400 Bad Request", ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newWireServer(t, func(n int, _ wireMsg) string {
				if n == 0 { // promises 100 bytes, sends 3, then keeps the connection open
					return "HTTP/1.1 " + tt.status + "\r\nContent-Length: 100\r\n\r\nabc"
				}
				return ok200
			})
			c, _ := testClient(t, srv.url(), func(c *Config) { c.ReplyTimeout = 100 * time.Millisecond })
			err := c.Deliver(context.Background(), sampleCall())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Deliver = %v, want %v", err, tt.wantErr)
			}
			var re *RejectedError
			if errors.As(err, &re) && re.Reason != "abc" {
				t.Errorf("snippet = %q, want the part that came", re.Reason)
			}
		})
	}
}
