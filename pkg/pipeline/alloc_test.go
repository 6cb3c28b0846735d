//go:build !race

// Allocation counts, without -race only: under the race detector sync.Pool
// drops items at random. scripts/test.sh runs this package without -race too.

package pipeline_test

import (
	"context"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

type nopForwarder struct{}

func (nopForwarder) Deliver(context.Context, *accesslog.APICall) error { return nil }

// A call costs few allocations from record to forwarder: the parsed call's
// strings, its node id, and the batch's share. Not parallel: AllocsPerRun
// counts the whole process's allocations. It was 4.6 per call before the
// call was parsed into its (pooled) job and the event id stopped being a
// string of its own.
func TestAllocationsPerCall(t *testing.T) {
	p, _ := newPipeline(t, nopForwarder{}, pipeline.Config{MaxBufferedCalls: 256, Workers: 4})
	recs, calls := records(t, 7, 40)
	batch := pipeline.Batch{Source: "test", Records: recs}
	run := func() {
		s, err := p.Submit(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		if o, err := s.Wait(context.Background()); err != nil || o.Delivered != len(calls) {
			t.Fatalf("outcome %+v, %v: want %d delivered", o, err, len(calls))
		}
	}
	run() // warm the pools and the decoder's buffers
	perCall := testing.AllocsPerRun(5, run) / float64(len(calls))
	t.Logf("%.2f allocations per call (%d calls per batch)", perCall, len(calls))
	if perCall > 3 {
		t.Errorf("%.2f allocations per call, want at most 3", perCall)
	}
}
