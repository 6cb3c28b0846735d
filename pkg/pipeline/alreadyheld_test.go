package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// heldForwarder reports every other call as already held by the node, wrapped
// as a forwarder may.
type heldForwarder struct{ n int }

func (f *heldForwarder) Deliver(_ context.Context, c *accesslog.APICall) error {
	f.n++ // one worker: no race
	if f.n%2 == 0 {
		return fmt.Errorf("deliver call: %w", &node.AlreadyHeldError{RequestID: c.RequestID})
	}
	return nil
}

// A call the node already held is delivered (the batch settles) and counted apart.
func TestAlreadyHeldCallsAreDeliveredAndCounted(t *testing.T) {
	t.Parallel()
	evs, _ := traffic.New(traffic.Options{Seed: 5}).Events(nil, 6)
	p, _ := newPipeline(t, &heldForwarder{}, pipeline.Config{MaxBufferedCalls: 8, Workers: 1})
	s, err := p.Submit(context.Background(), pipeline.Batch{Records: []pipeline.Record{{Data: traffic.GzipEnvelope("g", "s", evs)}}})
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.Outcome{Records: 1, Events: 6, Calls: 6, Delivered: 6, AlreadyHeld: 3}
	if got := s.Outcome(); got != want || !got.Settled() {
		t.Fatalf("outcome\n got %+v\nwant %+v (settled)", got, want)
	}
	var total pipeline.Outcome
	total.Add(want)
	total.Add(want)
	if total.AlreadyHeld != 6 {
		t.Errorf("Add: AlreadyHeld = %d, want 6", total.AlreadyHeld)
	}
}
