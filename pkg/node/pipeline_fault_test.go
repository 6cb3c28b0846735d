package node_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/internal/testenv/devnodetest"
	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/node"
)

// Connection resets and hangs on the way to the node (a fault proxy in front
// of devnode) with pipelined connections: every call completes, as delivered
// or already held.
func TestPipelineThroughFaults(t *testing.T) {
	t.Parallel()
	for _, f := range []testenv.Faults{{Reset: 0.05}, {Hang: 0.01}} {
		t.Run(fmt.Sprintf("reset=%v hang=%v", f.Reset, f.Hang), func(t *testing.T) {
			t.Parallel()
			dn, url := devnodetest.Start(t, devnode.DefaultOptions())
			proxy := testenv.StartFaultProxy(t, url)
			proxy.Set(f)
			cfg := node.DefaultConfig()
			cfg.URL = proxy.URL
			cfg.PipelineDepth = node.DefaultPipelineDepth
			cfg.ReplyTimeout = 300 * time.Millisecond
			cfg.Retry.InitialBackoff = time.Millisecond
			cfg.Retry.MaxBackoff = 20 * time.Millisecond
			c, err := node.New(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const n = 500
			ids := make([]string, n)
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
						ids[i] = "fault-" + strconv.Itoa(i)
						call := &accesslog.APICall{RequestID: ids[i], Method: "GET", Host: "api.example.com",
							Path: "/pets/" + strconv.Itoa(i), Status: 200, SourceIP: "203.0.113.7"}
						// Already held is delivered too: a reset can drop a
						// reply the node had sent, so the resent message
						// finds the call complete.
						if err := c.Deliver(ctx, call); err != nil && !errors.Is(err, node.ErrAlreadyHeld) {
							t.Errorf("Deliver %s: %v", ids[i], err)
							return
						}
					}
				})
			}
			wg.Wait()
			if missing, _ := dn.CheckDelivered(ids); len(missing) > 0 {
				t.Fatalf("missing %d calls at the node: %v", len(missing), missing[:min(5, len(missing))])
			}
			if st := proxy.Stats(); st.Reset+st.Hung == 0 {
				t.Errorf("proxy stats %+v: no fault was injected", st)
			}
		})
	}
}
