package nodeprobe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/devnodetest"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/node"
)

func probeConfig(url string) node.Config {
	cfg := node.DefaultConfig()
	cfg.URL = url
	cfg.ConnectTimeout = time.Second
	cfg.ReplyTimeout = time.Second
	cfg.Retry.InitialBackoff = 5 * time.Millisecond
	cfg.Retry.MaxBackoff = 50 * time.Millisecond
	return cfg
}

func startDevnode(t *testing.T) (*devnode.Server, string) {
	t.Helper()
	return devnodetest.Start(t, devnode.DefaultOptions())
}

func report(t *testing.T, r Report) string {
	t.Helper()
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestAcceptedByDevnode(t *testing.T) {
	t.Parallel()
	dn, url := startDevnode(t)
	r := Run(context.Background(), probeConfig(url), Options{}, nil)
	out := report(t, r)
	if !r.Accepted || !r.OK() {
		t.Fatalf("not accepted:\n%s", out)
	}
	for _, want := range []string{"ok   tcp", "ok   health", "ok   pipelining", "in order", "ok   call", "OPTIONS probe.apigw-connector.invalid/apigw-connector-probe"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// One call, sent as OPTIONS: the devnode saw exactly it.
	calls := dn.Calls()
	if len(calls) != 1 {
		t.Fatalf("devnode saw %d calls, want 1", len(calls))
	}
}

func TestClosedPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	r := Run(context.Background(), probeConfig(url), Options{}, nil)
	out := report(t, r)
	if r.Accepted || !strings.Contains(out, "FAIL tcp") || !strings.Contains(out, "connector.address") {
		t.Errorf("closed port report:\n%s", out)
	}
}

// fakeNode answers messages with status and serves node counters that move
// as a node's would for the given rejection reason.
func fakeNode(t *testing.T, status int, rejectReason string) string {
	t.Helper()
	var reqs, resps, rejected atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/wallarm-external-health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE %s counter\n%s{type=\"request\"} %d\n%s{type=\"response\"} %d\n", MetricSeen, MetricSeen, reqs.Load(), MetricSeen, resps.Load())
		if rejectReason != "" {
			fmt.Fprintf(w, "# TYPE %s counter\n%s{reason=%q} %d\n", MetricRejected, MetricRejected, rejectReason, rejected.Load())
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Wallarm-Response-Code") != "" {
			resps.Add(1)
		} else {
			reqs.Add(1)
		}
		if rejectReason != "" {
			rejected.Add(1)
		}
		w.WriteHeader(status)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRejections(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		reason string
		want   string
	}{
		{"connector_info", 403, "connector_info", "set node.connector_type"},
		{"host", 403, "host", "allowed_hosts"},
		{"remote_address", 403, "remote_address", "allowed_networks"},
		{"bad request", 400, "", "apigw-connector capture"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := fakeNode(t, tc.status, tc.reason)
			r := Run(context.Background(), probeConfig(url), Options{NodeMetricsURL: url + "/metrics"}, nil)
			out := report(t, r)
			if r.Accepted {
				t.Errorf("accepted although the node rejected:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("report lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestAcceptedWithNodeMetrics(t *testing.T) {
	t.Parallel()
	url := fakeNode(t, 200, "")
	r := Run(context.Background(), probeConfig(url), Options{NodeMetricsURL: url + "/metrics"}, nil)
	out := report(t, r)
	if !r.Accepted || !strings.Contains(out, "ok   node-metrics") || !strings.Contains(out, "seen +1 request, +1 response") {
		t.Errorf("report:\n%s", out)
	}
}

// A node that answers 500 (its reply timeout) to every message: retried until
// the probe's bound, then reported as not accepted with the 500's meaning.
func TestReplyTimeout(t *testing.T) {
	t.Parallel()
	url := fakeNode(t, 500, "")
	start := time.Now()
	r := Run(context.Background(), probeConfig(url), Options{CallTimeout: 500 * time.Millisecond}, nil)
	out := report(t, r)
	if r.Accepted || !strings.Contains(out, "app_reply_timeout") {
		t.Errorf("report:\n%s", out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("probe took %s despite a 500 ms bound", d)
	}
}

// End to end against devnode configured as a node with admission lists: the
// probe reads devnode's node-compatible counters and names each cause.
func TestDevnodeRejections(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*devnode.Options)
		want string
	}{
		{"connector_info", func(o *devnode.Options) { o.AllowedConnectorTypes = []string{"layer7"} }, `does not accept connector type "apigw-connector"`},
		{"host", func(o *devnode.Options) { o.AllowedHosts = []string{"api.example.com"} }, "rejected for host"},
		{"remote_address", func(o *devnode.Options) { o.AllowedNetworks = []string{"10.0.0.0/8"} }, "rejected for remote_address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := devnode.DefaultOptions()
			tc.edit(&o)
			_, url := devnodetest.Start(t, o)
			r := Run(context.Background(), probeConfig(url), Options{NodeMetricsURL: url + "/metrics"}, nil)
			out := report(t, r)
			if r.Accepted || !strings.Contains(out, tc.want) || !strings.Contains(out, "FAIL call") {
				t.Errorf("report lacks %q or accepted:\n%s", tc.want, out)
			}
		})
	}
	// Accepted by devnode with lists that admit the probe: its counters agree.
	o := devnode.DefaultOptions()
	o.AllowedConnectorTypes, o.AllowedHosts, o.AllowedNetworks = []string{"apigw-connector"}, []string{"probe.apigw-connector.invalid"}, []string{"127.0.0.0/8"}
	_, url := devnodetest.Start(t, o)
	r := Run(context.Background(), probeConfig(url), Options{NodeMetricsURL: url + "/metrics"}, nil)
	if out := report(t, r); !r.Accepted || !strings.Contains(out, "seen +1 request, +1 response; rejected +0; errors +0") {
		t.Errorf("admitted probe:\n%s", out)
	}
}
