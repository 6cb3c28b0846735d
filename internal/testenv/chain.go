package testenv

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/inventory"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// Chain is the real delivery chain the sources feed, on loopback:
// pipeline -> node client -> devnode. Retries are fast so fault drills end quickly.
type Chain struct {
	Node     *devnode.Server
	NodeURL  string
	Client   *node.Client
	Pipeline *pipeline.Pipeline
	Registry *prometheus.Registry
}

// StartChain starts devnode on 127.0.0.1 and a started pipeline delivering to
// it. Its cleanup runs after the test's later cleanups (t.Cleanup is LIFO), so
// a source registered afterwards is shut down first.
func StartChain(t testing.TB, log *slog.Logger) *Chain {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Chain{Registry: prometheus.NewRegistry()}
	c.Node = devnode.New(devnode.DefaultOptions(), nil, slog.New(slog.DiscardHandler))
	addr, err := c.Node.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: start devnode: %v", err)
	}
	c.NodeURL = "http://" + addr.String()
	ncfg := node.DefaultConfig()
	ncfg.URL = c.NodeURL
	ncfg.Concurrency = 16
	ncfg.Retry.InitialBackoff = 5 * time.Millisecond
	ncfg.Retry.MaxBackoff = 50 * time.Millisecond
	if c.Client, err = node.New(ncfg, c.Registry, log); err != nil {
		t.Fatalf("testenv: create node client: %v", err)
	}
	parser, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		t.Fatalf("testenv: create parser: %v", err)
	}
	pcfg := pipeline.DefaultConfig()
	pcfg.Workers = ncfg.Concurrency
	if c.Pipeline, err = pipeline.New(pcfg, c.Client, cwlogs.NewDecoder(cwlogs.DefaultOptions()), parser, c.Registry, log); err != nil {
		t.Fatalf("testenv: create pipeline: %v", err)
	}
	if err := c.Pipeline.Start(context.Background()); err != nil {
		t.Fatalf("testenv: start pipeline: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Pipeline.Shutdown(ctx); err != nil {
			t.Errorf("testenv: shut down pipeline: %v", err)
		}
		c.Client.Close()
		if err := c.Node.Shutdown(ctx); err != nil {
			t.Errorf("testenv: shut down devnode: %v", err)
		}
	})
	return c
}

// AssertDeliveredOnce fails the test unless every call reached the node exactly once.
func AssertDeliveredOnce(t testing.TB, n *devnode.Server, calls []traffic.Call) {
	t.Helper()
	ids := make([]string, len(calls))
	for i := range calls {
		ids[i] = calls[i].RequestID
	}
	AssertIDsDeliveredOnce(t, n, ids)
}

// AssertIDsDeliveredOnce is AssertDeliveredOnce for request ids.
func AssertIDsDeliveredOnce(t testing.TB, n *devnode.Server, ids []string) {
	t.Helper()
	missing, repeated := n.CheckDelivered(ids)
	if len(missing) > 0 || len(repeated) > 0 {
		t.Fatalf("of %d calls, %d never reached the node (e.g. %v) and %d reached it more than once (e.g. %v)",
			len(ids), len(missing), head(missing), len(repeated), head(repeated))
	}
}

func head(s []string) []string { return s[:min(len(s), 3)] }

// AssertNoneLost fails the test if a call never reached the node. A request
// message resent after an attempt whose fate was unseen (the caller's
// deadline cut it mid-flight) may arrive twice; the node refuses the second
// as a duplicate request id and keeps the call once, so repeats are only logged.
func AssertNoneLost(t testing.TB, n *devnode.Server, calls []traffic.Call) {
	t.Helper()
	ids := make([]string, len(calls))
	for i := range calls {
		ids[i] = calls[i].RequestID
	}
	AssertNoneLostIDs(t, n, ids)
}

// AssertNoneLostIDs is AssertNoneLost for request ids.
func AssertNoneLostIDs(t testing.TB, n *devnode.Server, ids []string) {
	t.Helper()
	missing, repeated := n.CheckDelivered(ids)
	if len(missing) > 0 {
		t.Fatalf("of %d calls, %d never reached the node (e.g. %v)", len(ids), len(missing), head(missing))
	}
	if len(repeated) > 0 {
		t.Logf("%d request messages resent after an unseen outcome and refused by the node as duplicates (e.g. %v)", len(repeated), head(repeated))
	}
}

// SameCalls reports whether two inventory snapshots hold the same calls. Their
// time series are left out: devnode's window slides with the clock, so two
// snapshots of the same calls taken either side of a step's end differ there.
func SameCalls(a, b []inventory.Endpoint) bool {
	strip := func(eps []inventory.Endpoint) []inventory.Endpoint {
		out := slices.Clone(eps)
		for i := range out {
			out[i].Series = nil
		}
		return out
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
