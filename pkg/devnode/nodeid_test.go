package devnode

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestDuplicateIDWithOtherContentIsRejected: a second call under an id the
// node already has is a 400 even when it is a different call (other method,
// path, host, client): that is how a shared client-set requestId loses calls.
func TestDuplicateIDWithOtherContentIsRejected(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	other := with(requestHeaders("shared"), DefaultForwardedHostHeader, "other.example.com", DefaultForwardedForHeader, "198.51.100.9")
	// While the first call is pending, then after it completed.
	if code, _ := n.send(t, msg{method: "GET", path: "/a", hdr: requestHeaders("shared")}); code != http.StatusOK {
		t.Fatalf("first request message: %d", code)
	}
	if code, body := n.send(t, msg{method: "POST", path: "/b", hdr: other}); code != http.StatusBadRequest || !strings.Contains(body, "duplicate request id") {
		t.Fatalf("other call, same id, pending: %d %q, want 400 duplicate", code, body)
	}
	if code, _ := n.send(t, msg{method: "POST", path: "/a", hdr: responseHeaders("shared", "200")}); code != http.StatusOK {
		t.Fatalf("first response message: %d", code)
	}
	if code, body := n.send(t, msg{method: "DELETE", path: "/c", hdr: other}); code != http.StatusBadRequest || !strings.Contains(body, "duplicate request id") {
		t.Fatalf("other call, same id, completed: %d %q, want 400 duplicate", code, body)
	}
	if inv := n.Inventory(); len(inv) != 1 || inv[0].Path != "/a" {
		t.Fatalf("inventory %+v, want only the first call", inv)
	}
}

func TestOwnHostIsFlagged(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	u, err := url.Parse(n.base)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	tests := []struct {
		host string
		own  bool
	}{
		{"api.example.com", false},
		{u.Host, true}, // 127.0.0.1:port, what a connector falls back to from node.url
		{"localhost:" + port, true},
		{"[::1]:" + port, true},
		{"127.0.0.1:1", false},
		{"api.example.com:" + port, false},
	}
	want := int64(0)
	for i, tc := range tests {
		id := "own-" + string(rune('a'+i))
		h := with(requestHeaders(id), DefaultForwardedHostHeader, tc.host)
		if code, body := n.send(t, msg{method: "GET", path: "/p", hdr: h}); code != http.StatusOK {
			t.Fatalf("host %s: %d %q (flagged calls are still accepted)", tc.host, code, body)
		}
		if tc.own {
			want++
		}
		if st := n.Stats(); st.OwnHost != want || (tc.own && st.OwnHostSeen != tc.host) {
			t.Fatalf("after host %s: own_host %d (%q), want %d", tc.host, st.OwnHost, st.OwnHostSeen, want)
		}
	}
	var st Stats
	n.getJSON(t, "/stats", &st)
	if st.OwnHost != want || st.OwnHostSeen == "" {
		t.Fatalf("/stats own_host %d %q, want %d and the host", st.OwnHost, st.OwnHostSeen, want)
	}
	if code, body := n.send(t, msg{method: "GET", path: "/"}); code != http.StatusOK || !strings.Contains(body, "own address as the API's host") {
		t.Fatalf("UI %d does not flag the own-address calls:\n%s", code, body)
	}
}

func TestLogRequestID(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"c6af9ac6-7b61-11e6-9a41-93e8deadbeef-0123456789abcdef01234567": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
		"r-0123456789abcdef01234567":                                    "r",
		"0123456789abcdef01234567":                                      "", // hash only: no log id
		"r-0123456789ABCDEF01234567":                                    "", // not the connector's lower-case hex
		"r-0123456789abcdef0123456":                                     "",
		"-0123456789abcdef01234567":                                     "",
		"plain-request-id":                                              "",
		"r_0123456789abcdef01234567x":                                   "",
	}
	for id, want := range tests {
		if got := LogRequestID(id); got != want {
			t.Errorf("LogRequestID(%q) = %q, want %q", id, got, want)
		}
	}
}

// TestCheckDeliveredByLogRequestID: tests that know their calls by log
// request id keep working when the connector sends node ids, and a log
// event sent under two node ids shows as repeated.
func TestCheckDeliveredByLogRequestID(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	n.call(t, "once-0123456789abcdef01234567", "GET", "/a", "200")
	n.call(t, "twice-0123456789abcdef01234567", "GET", "/b", "200")
	n.call(t, "twice-76543210fedcba9876543210", "GET", "/b", "200")
	n.call(t, "exact", "GET", "/c", "200")
	missing, repeated := n.CheckDelivered([]string{"once", "twice", "exact", "never", "once-0123456789abcdef01234567"})
	if !slices.Equal(missing, []string{"never"}) || !slices.Equal(repeated, []string{"twice"}) {
		t.Fatalf("missing %v, repeated %v", missing, repeated)
	}
	d := n.DeliveredIDs()
	if d["once"] != 1 || d["twice"] != 2 || d["exact"] != 1 || d["once-0123456789abcdef01234567"] != 1 {
		t.Fatalf("delivered %v", d)
	}
	for _, c := range n.Calls() {
		if c.ID != "exact" && c.LogRequestID == "" {
			t.Fatalf("call %+v has no log request id", c)
		}
	}
}

func TestCheckDeliveredMatchesWhatTheConnectorKeepsOfAnID(t *testing.T) {
	t.Parallel()
	n := startNode(t, DefaultOptions())
	// An HTTP API requestId: the connector drops the '=' (not a token character).
	n.call(t, AsNodeIDPrefix("JQm4gi3RoAMEbWA=")+"-0123456789abcdef01234567", "GET", "/a", "200")
	if missing, repeated := n.CheckDelivered([]string{"JQm4gi3RoAMEbWA="}); len(missing)+len(repeated) != 0 {
		t.Fatalf("missing %v, repeated %v", missing, repeated)
	}
	if got := AsNodeIDPrefix("a/b=c d" + strings.Repeat("x", 100)); got != "abc"+"d"+strings.Repeat("x", 60) {
		t.Fatalf("AsNodeIDPrefix = %q", got)
	}
}
