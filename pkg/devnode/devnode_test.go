package devnode

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRejections(t *testing.T) {
	t.Parallel()
	prefixed := DefaultOptions()
	prefixed.PathPrefix = "/wallarm"
	lax := DefaultOptions()
	lax.RequireConnectorHeaders = false

	req := requestHeaders("r-1")
	resp := responseHeaders("r-1", "200")
	tests := []struct {
		name     string
		opts     *Options
		pre      []msg // sent first, each expected 200
		m        msg
		wantCode int
		reason   string // "" = accepted
		wantBody string
	}{
		{name: "missing request id", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultRequestIDHeader, "")},
			wantCode: 400, reason: "missing_request_id", wantBody: "missing header X-Wallarm-Request-Id"},
		{name: "missing request id on a control path with POST", m: msg{method: "POST", path: "/inventory", hdr: with(req, DefaultRequestIDHeader, "")},
			wantCode: 400, reason: "missing_request_id", wantBody: "missing header X-Wallarm-Request-Id"},
		{name: "missing request id on an unknown GET path", m: msg{method: "GET", path: "/pets/1", hdr: map[string]string{}},
			wantCode: 400, reason: "missing_request_id", wantBody: "missing header X-Wallarm-Request-Id"},
		{name: "missing forwarded host", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedHostHeader, "")},
			wantCode: 400, reason: "missing_forwarded_host", wantBody: "missing header X-Wallarm-Forwarded-Host"},
		{name: "missing forwarded for", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedForHeader, "")},
			wantCode: 400, reason: "missing_forwarded_for", wantBody: "missing header X-Wallarm-Forwarded-For"},
		{name: "missing connector type", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultConnectorTypeHeader, "")},
			wantCode: 400, reason: "missing_connector_type", wantBody: "missing header X-Wallarm-Connector-Type"},
		{name: "missing connector version", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultConnectorVersionHeader, "")},
			wantCode: 400, reason: "missing_connector_version", wantBody: "missing header X-Wallarm-Connector-Version"},
		{name: "missing connector type and version allowed when not required", opts: &lax,
			m:        msg{method: "GET", path: "/pets", hdr: with(req, DefaultConnectorTypeHeader, "", DefaultConnectorVersionHeader, "")},
			wantCode: 200, wantBody: "request accepted"},
		{name: "missing response half's request id", m: msg{method: "POST", path: "/pets", hdr: with(resp, DefaultRequestIDHeader, "")},
			wantCode: 400, reason: "missing_request_id", wantBody: "missing header X-Wallarm-Request-Id"},
		{name: "repeated request id", m: msg{method: "GET", path: "/pets", hdr: req, extra: map[string][]string{DefaultRequestIDHeader: {"r-2"}}},
			wantCode: 400, reason: "repeated_header", wantBody: "repeated header X-Wallarm-Request-Id"},
		{name: "repeated response code", pre: []msg{{method: "GET", path: "/pets", hdr: req}},
			m:        msg{method: "POST", path: "/pets", hdr: resp, extra: map[string][]string{DefaultResponseCodeHeader: {"404"}}},
			wantCode: 400, reason: "repeated_header", wantBody: "repeated header X-Wallarm-Response-Code"},
		{name: "ipv4 with port", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedForHeader, "1.2.3.4:5678")},
			wantCode: 400, reason: "client_ip_with_port", wantBody: "client ip with port"},
		{name: "ipv6 with port", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedForHeader, "[::1]:80")},
			wantCode: 400, reason: "client_ip_with_port", wantBody: "client ip with port"},
		{name: "not an ip", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedForHeader, "client.example.com")},
			wantCode: 400, reason: "bad_client_ip", wantBody: "bad client ip"},
		{name: "ip list", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedForHeader, "1.2.3.4, 5.6.7.8")},
			wantCode: 400, reason: "bad_client_ip", wantBody: "bad client ip"},
		{name: "bracketed ipv6 without port", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedForHeader, "[::1]")},
			wantCode: 400, reason: "bad_client_ip", wantBody: "bad client ip"},
		{name: "bare ipv6 accepted", m: msg{method: "GET", path: "/pets", hdr: with(req, DefaultForwardedForHeader, "2001:db8::1")},
			wantCode: 200, wantBody: "request accepted"},
		{name: "response code not a number", pre: []msg{{method: "GET", path: "/pets", hdr: req}},
			m: msg{method: "POST", path: "/pets", hdr: with(resp, DefaultResponseCodeHeader, "OK")}, wantCode: 400, reason: "bad_response_code", wantBody: "bad response code"},
		{name: "response code 99", m: msg{method: "POST", path: "/pets", hdr: with(resp, DefaultResponseCodeHeader, "99")},
			wantCode: 400, reason: "bad_response_code", wantBody: "bad response code"},
		{name: "response code 600", m: msg{method: "POST", path: "/pets", hdr: with(resp, DefaultResponseCodeHeader, "600")},
			wantCode: 400, reason: "bad_response_code", wantBody: "bad response code"},
		{name: "response code signed", m: msg{method: "POST", path: "/pets", hdr: with(resp, DefaultResponseCodeHeader, "+20")},
			wantCode: 400, reason: "bad_response_code", wantBody: "bad response code"},
		{name: "response code empty", m: msg{method: "POST", path: "/pets", hdr: req, extra: map[string][]string{DefaultResponseCodeHeader: {""}}},
			wantCode: 400, reason: "bad_response_code", wantBody: "bad response code"},
		{name: "response with wrong method", pre: []msg{{method: "GET", path: "/pets", hdr: req}},
			m: msg{method: "PUT", path: "/pets", hdr: resp}, wantCode: 400, reason: "bad_response_method", wantBody: "bad response method PUT"},
		{name: "request with body", m: msg{method: "POST", path: "/pets", hdr: req, body: `{"a":1}`},
			wantCode: 400, reason: "unexpected_body", wantBody: "unexpected body"},
		{name: "response without request", m: msg{method: "POST", path: "/pets", hdr: resp},
			wantCode: 400, reason: "response_without_request", wantBody: "response without request"},
		{name: "duplicate request id while pending", pre: []msg{{method: "GET", path: "/pets", hdr: req}},
			m: msg{method: "GET", path: "/pets", hdr: req}, wantCode: 400, reason: "duplicate_request_id", wantBody: "duplicate request id r-1"},
		{name: "response for another path", pre: []msg{{method: "GET", path: "/pets", hdr: req}},
			m: msg{method: "POST", path: "/owners", hdr: resp}, wantCode: 400, reason: "mismatched_response", wantBody: "mismatched response"},
		{name: "response for another host", pre: []msg{{method: "GET", path: "/pets", hdr: req}},
			m: msg{method: "POST", path: "/pets", hdr: with(resp, DefaultForwardedHostHeader, "other.example.com")}, wantCode: 400, reason: "mismatched_response", wantBody: "mismatched response"},
		{name: "path outside prefix", opts: &prefixed, m: msg{method: "GET", path: "/pets", hdr: req},
			wantCode: 400, reason: "bad_path_prefix", wantBody: "bad path prefix"},
		{name: "path sharing the prefix's first letters", opts: &prefixed, m: msg{method: "GET", path: "/wallarmx/pets", hdr: req},
			wantCode: 400, reason: "bad_path_prefix", wantBody: "bad path prefix"},
		{name: "path under prefix", opts: &prefixed, m: msg{method: "GET", path: "/wallarm/pets", hdr: req},
			wantCode: 200, wantBody: "request accepted"},
		{name: "message on a control path", m: msg{method: "GET", path: "/inventory", hdr: req},
			wantCode: 200, wantBody: "request accepted"},
		{name: "message on the health path", m: msg{method: "GET", path: DefaultHealthPath, hdr: req},
			wantCode: 200, wantBody: "request accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := DefaultOptions()
			if tc.opts != nil {
				o = *tc.opts
			}
			n := startNode(t, o)
			for _, m := range tc.pre {
				if prefixed := o.PathPrefix; prefixed != "" {
					m.path = prefixed + m.path
				}
				if code, body := n.send(t, m); code != 200 {
					t.Fatalf("setup message %s %s: %d %q", m.method, m.path, code, body)
				}
			}
			code, body := n.send(t, tc.m)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.wantCode, tc.wantBody)
			}
			st := n.Stats()
			var want map[string]int64
			if tc.reason != "" {
				want = map[string]int64{tc.reason: 1}
			}
			if len(st.Rejects) != len(want) || (tc.reason != "" && st.Rejects[tc.reason] != 1) {
				t.Fatalf("rejects = %v, want %v", st.Rejects, want)
			}
			if tc.reason == "" && st.Requests != 1+int64(len(tc.pre)) {
				t.Fatalf("requests = %d, want %d", st.Requests, 1+len(tc.pre))
			}
			if len(n.Calls()) != 0 || len(n.Inventory()) != 0 {
				t.Fatalf("a rejected or unanswered message completed a call: %v", n.Calls())
			}
		})
	}
}

func TestPairingCompletesCall(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	before := time.Now()
	n.call(t, "req-1", "DELETE", "/pets/42", "204")

	calls := n.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls = %v, want 1", calls)
	}
	c := calls[0]
	want := Call{ID: "req-1", Method: "DELETE", Host: "api.example.com", Path: "/pets/42", ClientIP: "203.0.113.7",
		ConnectorType: "apigw-connector", ConnectorVersion: "0.1.0", Status: 204}
	got := c
	got.RequestAt, got.ResponseAt = time.Time{}, time.Time{}
	if got != want {
		t.Fatalf("call = %+v, want %+v", got, want)
	}
	if c.RequestAt.Before(before) || c.ResponseAt.Before(c.RequestAt) {
		t.Fatalf("times out of order: request %v response %v (test start %v)", c.RequestAt, c.ResponseAt, before)
	}
	if d := n.DeliveredIDs(); len(d) != 1 || d["req-1"] != 1 {
		t.Fatalf("delivered = %v, want req-1 once", d)
	}
	st := n.Stats()
	if st.Requests != 1 || st.Responses != 1 || st.Completed != 1 || st.Pending != 0 || len(st.Rejects) != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestDuplicatesAreRejectedAndReported(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	req := msg{method: "GET", path: "/pets", hdr: requestHeaders("dup")}
	resp := msg{method: "POST", path: "/pets", hdr: responseHeaders("dup", "200")}

	steps := []struct {
		m        msg
		wantCode int
		wantBody string
	}{
		{req, 200, "request accepted"},
		{req, 400, "duplicate request id dup"}, // while pending
		{resp, 200, "call completed"},
		{req, 400, "duplicate request id dup"}, // after completion
		{resp, 400, "duplicate response"},
	}
	for i, s := range steps {
		if code, body := n.send(t, s.m); code != s.wantCode || !strings.Contains(body, s.wantBody) {
			t.Fatalf("step %d: got %d %q, want %d %q", i, code, body, s.wantCode, s.wantBody)
		}
	}
	if d := n.DeliveredIDs(); d["dup"] != 3 {
		t.Fatalf("delivered[dup] = %d, want 3 (one accepted, two duplicates)", d["dup"])
	}
	st := n.Stats()
	if st.Completed != 1 || st.Duplicates != 2 || st.Rejects["duplicate_request_id"] != 2 || st.Rejects["duplicate_response"] != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if inv := n.Inventory(); len(inv) != 1 || inv[0].Calls != 1 {
		t.Fatalf("inventory = %+v, want one call", inv)
	}
}

func TestResponseBeforeRequestIsRejected(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	if code, body := n.send(t, msg{method: "POST", path: "/pets", hdr: responseHeaders("ooo", "200")}); code != 400 || !strings.Contains(body, "response without request") {
		t.Fatalf("response first: %d %q", code, body)
	}
	// The request half that follows is fine on its own and waits for a response.
	if code, body := n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders("ooo")}); code != 200 {
		t.Fatalf("request after: %d %q", code, body)
	}
	st := n.Stats()
	if st.Pending != 1 || st.Completed != 0 || st.Rejects["response_without_request"] != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestInventoryFoldsIDs(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	calls := []struct{ method, path, status string }{
		{"GET", "/pets/42", "200"},
		{"GET", "/pets/7", "404"},
		{"GET", "/users/550e8400-e29b-41d4-a716-446655440000", "200"},
		{"GET", "/items/5f3a9c2b7e", "200"},
		{"GET", "/v1/orders/abc", "200"},
		{"POST", "/pets", "201"},
		{"GET", "/inventory", "200"}, // an API path that looks like a control path
	}
	for i, c := range calls {
		n.call(t, fmt.Sprintf("id-%d", i), c.method, c.path, c.status)
	}
	var inv []Endpoint
	n.getJSON(t, "/inventory", &inv)
	type row struct {
		method, path string
		calls        int64
		statuses     string
	}
	var got []row
	for _, e := range inv {
		if e.Host != "api.example.com" || e.FirstSeen.IsZero() || e.LastSeen.Before(e.FirstSeen) {
			t.Errorf("endpoint %+v: bad host or times", e)
		}
		got = append(got, row{e.Method, e.Path, e.Calls, formatStatuses(e.Statuses)})
	}
	want := []row{
		{"GET", "/inventory", 1, "200:1"},
		{"GET", "/items/{id}", 1, "200:1"},
		{"POST", "/pets", 1, "201:1"},
		{"GET", "/pets/{id}", 2, "200:1 404:1"},
		{"GET", "/users/{id}", 1, "200:1"},
		{"GET", "/v1/orders/abc", 1, "200:1"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("inventory:\n got %v\nwant %v", got, want)
	}
	if direct := n.Inventory(); len(direct) != len(inv) {
		t.Fatalf("Inventory() has %d endpoints, /inventory %d", len(direct), len(inv))
	}
}

func TestFoldPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/pets/42", "/pets/{id}"},
		{"/users/550e8400-e29b-41d4-a716-446655440000", "/users/{id}"},
		{"/users/550E8400-E29B-41D4-A716-446655440000/orders", "/users/{id}/orders"},
		{"/items/5f3a9c2b7e", "/items/{id}"},
		{"/v1/orders/abc", "/v1/orders/abc"},
		{"/v1/orders/deadbeef", "/v1/orders/deadbeef"}, // hex letters only: a word
		{"/v1/orders/5f3a9c2", "/v1/orders/5f3a9c2"},   // 7 hex chars: too short
		{"/v2/a/1/b/2/", "/v2/a/{id}/b/{id}/"},
		{"/", "/"},
		{"", ""},
		{"//7", "//{id}"},
		{"/0", "/{id}"},
		{"/550e8400-e29b-41d4-a716-44665544000g", "/550e8400-e29b-41d4-a716-44665544000g"},
	}
	for _, tc := range tests {
		if got := FoldPath(tc.in); got != tc.want {
			t.Errorf("FoldPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHTMLEscapesForwardedValues(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	host := `<script>alert("host")</script>`
	path := `/x/<img src=x onerror=alert(1)>`
	h := with(requestHeaders("xss"), DefaultForwardedHostHeader, host)
	if code, body := n.send(t, msg{method: "GET", path: path, hdr: h}); code != 200 {
		t.Fatalf("request: %d %q", code, body)
	}
	if code, body := n.send(t, msg{method: "POST", path: path, hdr: with(h, DefaultResponseCodeHeader, "200")}); code != 200 {
		t.Fatalf("response: %d %q", code, body)
	}
	code, page := n.send(t, msg{method: "GET", path: "/"})
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	// The page has a script of its own: look for the forwarded ones.
	for _, bad := range []string{`<script>alert`, "<img"} {
		if strings.Contains(page, bad) {
			t.Fatalf("page contains unescaped %q:\n%s", bad, page)
		}
	}
	for _, good := range []string{"&lt;script&gt;", "&lt;img src=x onerror=alert(1)&gt;", `data-code="200"`} {
		if !strings.Contains(page, good) {
			t.Fatalf("page lacks %q:\n%s", good, page)
		}
	}
}

func TestFailForThenRecovers(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.FailFor = 300 * time.Millisecond
	n := startNode(t, o)

	if code, _ := n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders("f-1")}); code != 503 {
		t.Fatalf("message while failing: %d, want 503", code)
	}
	if code, _ := n.send(t, msg{method: "GET", path: DefaultHealthPath}); code != 503 {
		t.Fatalf("health while failing: %d, want 503", code)
	}
	// Observation endpoints keep working during a drill.
	var st Stats
	n.getJSON(t, "/stats", &st)
	if st.Failed != 1 || st.Requests != 0 {
		t.Fatalf("stats while failing = %+v", st)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := n.send(t, msg{method: "GET", path: DefaultHealthPath})
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The failed message was not recorded, so its retry is not a duplicate.
	n.call(t, "f-1", "GET", "/pets", "200")

	n.SetFailing(429, time.Hour)
	if code, _ := n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders("f-2")}); code != 429 {
		t.Fatalf("after SetFailing(429): %d", code)
	}
	n.SetFailing(0, 0)
	n.call(t, "f-2", "GET", "/pets", "200")
	if d := n.DeliveredIDs(); d["f-1"] != 1 || d["f-2"] != 1 {
		t.Fatalf("delivered = %v", d)
	}
}

func TestLatencyIsApplied(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	const lat = 150 * time.Millisecond
	n.SetLatency(lat)
	start := time.Now()
	if code, _ := n.send(t, msg{method: "GET", path: DefaultHealthPath}); code != 200 {
		t.Fatalf("health: %d", code)
	}
	n.call(t, "lat", "GET", "/pets", "200")
	if took := time.Since(start); took < 3*lat {
		t.Fatalf("3 replies took %v, want at least %v", took, 3*lat)
	}
	n.SetLatency(0)
}

func TestShutdownCutsLatencyShort(t *testing.T) {
	t.Parallel()
	s := New(DefaultOptions(), nil, nil)
	addr, err := s.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.SetLatency(time.Hour)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	done := make(chan error, 1)
	go func() {
		res, err := (&http.Client{Transport: tr}).Get("http://" + addr.String() + DefaultHealthPath)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	// Wait until the request is being served, then shut down.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("request never arrived")
		}
		if s.sleeping.Load() == 1 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	<-done
	if _, err := s.Start(context.Background(), "127.0.0.1:0"); err == nil {
		t.Fatal("second Start succeeded")
	}
}

func TestPendingExpiresAfterTTL(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	o := DefaultOptions()
	o.PendingTTL = time.Minute
	n := startNode(t, o, func(s *Server) { s.now = clock.now })

	for _, id := range []string{"old-1", "old-2"} {
		if code, _ := n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders(id)}); code != 200 {
			t.Fatalf("request %s: %d", id, code)
		}
	}
	clock.advance(30 * time.Second)
	if code, _ := n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders("young")}); code != 200 {
		t.Fatal("young request rejected")
	}
	if st := n.Stats(); st.Pending != 3 || st.MissingResponse != 0 {
		t.Fatalf("before TTL: %+v", st)
	}
	clock.advance(31 * time.Second) // old ones are 61 s old, young 31 s
	if st := n.Stats(); st.Pending != 1 || st.MissingResponse != 2 {
		t.Fatalf("after TTL: %+v", st)
	}
	if code, body := n.send(t, msg{method: "POST", path: "/pets", hdr: responseHeaders("old-1", "200")}); code != 400 || !strings.Contains(body, "response without request") {
		t.Fatalf("late response: %d %q", code, body)
	}
	if code, _ := n.send(t, msg{method: "POST", path: "/pets", hdr: responseHeaders("young", "200")}); code != 200 {
		t.Fatal("young response rejected")
	}
	_, page := n.send(t, msg{method: "GET", path: "/metrics"})
	for _, want := range []string{"apigw_devnode_flows_missing_response_total 2", "apigw_devnode_pending 0"} {
		if !strings.Contains(page, want) {
			t.Fatalf("metrics lack %q:\n%s", want, page)
		}
	}
}

func TestPendingIsBounded(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.MaxPending = 2
	n := startNode(t, o)
	for i, want := range []int{200, 200, 503} {
		if code, body := n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders(fmt.Sprint("p", i))}); code != want {
			t.Fatalf("request %d: %d %q, want %d", i, code, body, want)
		}
	}
	// Completing a call frees its slot.
	if code, _ := n.send(t, msg{method: "POST", path: "/pets", hdr: responseHeaders("p0", "200")}); code != 200 {
		t.Fatalf("response p0: %d", code)
	}
	n.call(t, "p2", "GET", "/pets", "200")
	if st := n.Stats(); st.Rejects["pending_full"] != 1 || st.Pending != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestCompletedMemoryIsBounded(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.MaxCompleted = numShards // one per shard
	n := startNode(t, o)
	const total = 200
	for i := range total {
		n.call(t, fmt.Sprint("c", i), "GET", "/pets", "200")
	}
	st := n.Stats()
	calls := n.Calls()
	if len(calls) > numShards || int64(len(calls))+st.Forgotten != total || st.Completed != total {
		t.Fatalf("remembered %d, forgotten %d, completed %d; want <= %d remembered, sum %d", len(calls), st.Forgotten, st.Completed, numShards, total)
	}
	if inv := n.Inventory(); len(inv) != 1 || inv[0].Calls != total {
		t.Fatalf("inventory must count every call: %+v", inv)
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	const workers, perWorker = 8, 150
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := fmt.Sprintf("w%d-%d", w, i)
				n.call(t, id, "GET", fmt.Sprintf("/pets/%d", i), "200")
				if i%50 == 0 { // a duplicate now and then, as a buggy connector would send
					if code, _ := n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders(id)}); code != 400 {
						t.Errorf("duplicate %s: %d", id, code)
					}
				}
			}
		})
	}
	wg.Wait()
	st := n.Stats()
	if st.Completed != workers*perWorker || st.Pending != 0 || st.Duplicates != workers*3 {
		t.Fatalf("stats = %+v", st)
	}
	dups := 0
	for id, times := range n.DeliveredIDs() {
		if times != 1 {
			dups++
			if times != 2 {
				t.Errorf("%s delivered %d times", id, times)
			}
		}
	}
	if dups != workers*3 {
		t.Fatalf("%d ids reported duplicated, want %d", dups, workers*3)
	}
	if inv := n.Inventory(); len(inv) != 1 || inv[0].Path != "/pets/{id}" || inv[0].Calls != workers*perWorker {
		t.Fatalf("inventory = %+v", inv)
	}
}

func TestMetricsAndStatsEndpoints(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := New(DefaultOptions(), reg, nil)
	addr, err := s.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	n := &node{Server: s, base: "http://" + addr.String(), client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	n.call(t, "m-1", "GET", "/pets", "200")
	n.send(t, msg{method: "POST", path: "/pets", hdr: responseHeaders("nope", "200")})
	n.send(t, msg{method: "GET", path: "/pets", hdr: requestHeaders("m-2")})

	_, page := n.send(t, msg{method: "GET", path: "/metrics"})
	for _, want := range []string{
		`apigw_devnode_messages_total{code="200",kind="request"} 2`,
		`apigw_devnode_messages_total{code="200",kind="response"} 1`,
		`apigw_devnode_messages_total{code="400",kind="response"} 1`,
		`apigw_devnode_calls_completed_total 1`,
		`apigw_devnode_rejected_total{reason="response_without_request"} 1`,
		`apigw_devnode_pending 1`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := testutil.ToFloat64(s.metrics.completed); got != 1 {
		t.Errorf("completed = %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "apigw_devnode_calls_completed_total", "apigw_devnode_pending"); err != nil || n != 2 {
		t.Errorf("caller's registry: %d series, %v", n, err)
	}

	var st Stats
	n.getJSON(t, "/stats", &st)
	if st.Requests != 2 || st.Completed != 1 || st.Pending != 1 || st.Rejects["response_without_request"] != 1 {
		t.Fatalf("/stats = %+v", st)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{"defaults", func(*Options) {}, ""},
		{"zero value takes defaults", func(o *Options) { *o = Options{} }, ""},
		{"bad header name", func(o *Options) { o.Headers.RequestID = "X Request" }, "devnode.headers.request_id must be an HTTP header name"},
		{"same header twice", func(o *Options) { o.Headers.ResponseCode = "x-wallarm-request-id" }, "devnode.headers.response_code names the same header as devnode.headers.request_id"},
		{"bad method", func(o *Options) { o.ResponseMethod = "PO ST" }, "devnode.response_method"},
		{"bad fail status", func(o *Options) { o.FailStatus = 700 }, "devnode.fail_status must be between 100 and 599, got 700"},
		{"negative latency", func(o *Options) { o.Latency = -1 }, "devnode.latency"},
		{"negative ttl", func(o *Options) { o.PendingTTL = -time.Second }, "devnode.pending_ttl"},
		{"prefix without slash", func(o *Options) { o.PathPrefix = "wallarm" }, "devnode.path_prefix"},
		{"prefix with trailing slash", func(o *Options) { o.PathPrefix = "/wallarm/" }, "devnode.path_prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := DefaultOptions()
			tc.mutate(&o)
			err := o.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCustomHeaderNames(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Headers = Headers{RequestID: "X-Req", ForwardedHost: "X-Host", ForwardedFor: "X-Real-Ip",
		ConnectorType: "X-Ct", ConnectorVersion: "X-Cv", ResponseCode: "X-Status"}
	o.ResponseMethod = "PUT"
	n := startNode(t, o)
	h := map[string]string{"X-Req": "c-1", "X-Host": "h.example", "X-Real-Ip": "10.0.0.1", "X-Ct": "t", "X-Cv": "1"}
	if code, body := n.send(t, msg{method: "GET", path: "/a", hdr: h}); code != 200 {
		t.Fatalf("request: %d %q", code, body)
	}
	if code, body := n.send(t, msg{method: "PUT", path: "/a", hdr: with(h, "X-Status", "500")}); code != 200 {
		t.Fatalf("response: %d %q", code, body)
	}
	if c := n.Calls(); len(c) != 1 || c[0].Status != 500 || c[0].Host != "h.example" {
		t.Fatalf("calls = %+v", c)
	}
}

func TestCheckDelivered(t *testing.T) {
	t.Parallel()
	s := New(DefaultOptions(), nil, nil)
	h := s.Handler()
	send := func(id string, response bool) {
		req := httptest.NewRequest(http.MethodGet, "/pets/1", nil)
		req.Host = "api.example.com"
		for k, v := range map[string]string{DefaultRequestIDHeader: id, DefaultForwardedHostHeader: "api.example.com",
			DefaultForwardedForHeader: "1.2.3.4", DefaultConnectorTypeHeader: "t", DefaultConnectorVersionHeader: "v"} {
			req.Header.Set(k, v)
		}
		if response {
			req.Method = http.MethodPost
			req.Header.Set(DefaultResponseCodeHeader, "200")
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	send("a", false)
	send("a", true)
	send("b", false)
	send("b", true)
	send("b", false) // a duplicate request after completion
	missing, repeated := s.CheckDelivered([]string{"a", "b", "c"})
	if len(missing) != 1 || missing[0] != "c" || len(repeated) != 1 || repeated[0] != "b" {
		t.Fatalf("missing %v repeated %v, want [c] [b]", missing, repeated)
	}
}
