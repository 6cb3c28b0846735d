package node

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// goneHeader marks the messages of a client standing for a process that went
// away: devnodeRefusingResponses refuses its response messages for good.
const goneHeader = "X-Test-Gone"

// devnodeRefusingResponses serves a devnode that answers 503 to every
// response message while the returned flag is set (it starts set), and
// always to those carrying goneHeader.
func devnodeRefusingResponses(t *testing.T, o devnode.Options) (*devnode.Server, *httptest.Server, *atomic.Bool) {
	t.Helper()
	dn := devnode.New(o, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	responsesDown := new(atomic.Bool)
	responsesDown.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Wallarm-Response-Code") != "" && (responsesDown.Load() || r.Header.Get(goneHeader) != "") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		dn.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return dn, srv, responsesDown
}

// A call cut between its two messages by a process that then went away (crash,
// Lambda retry in another execution environment, a Kinesis lease moved to
// another worker) is delivered again by a process that never saw the first
// attempt: its request message is refused as a duplicate request id. The call
// must still be completed (the response sent), not settled as rejected.
func TestCallCutInHalfByAnotherProcessIsCompleted(t *testing.T) {
	t.Parallel()
	dn, srv, responsesDown := devnodeRefusingResponses(t, devnode.DefaultOptions())

	call := sampleCall()
	// The first process's response messages stay refused after the flag is
	// cleared: its last attempt, cut by the deadline, may still be on the
	// wire and reach the node later; it went away, so it must not complete
	// the call for the second process.
	first, _ := testClient(t, srv.URL, func(c *Config) { c.ExtraHeaders = map[string]string{goneHeader: "1"} })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := first.Deliver(ctx, call); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Deliver: %v, want the deadline (request accepted, response refused)", err)
	}
	responsesDown.Store(false)

	// Another process (no memory of the first attempt) delivers the call again.
	second, _ := testClient(t, srv.URL, nil)
	err := second.Deliver(context.Background(), call)
	if missing, _ := dn.CheckDelivered([]string{call.RequestID}); len(missing) > 0 {
		t.Fatalf("call lost: the node holds only its request; redelivery returned %v", err)
	}
	if err != nil {
		t.Fatalf("redelivery: %v, want nil: the node completed the call", err)
	}
}

// A call cut in half whose redelivery comes after the node stopped waiting for
// the response half (Firehose retries come seconds to minutes later): the
// response alone is refused as unmatched, so the whole pair must be sent again.
func TestCallCutInHalfAfterTheNodeForgotTheRequestIsCompleted(t *testing.T) {
	t.Parallel()
	opts := devnode.DefaultOptions()
	opts.PendingTTL = 100 * time.Millisecond
	dn, srv, responsesDown := devnodeRefusingResponses(t, opts)

	call := sampleCall()
	c, _ := testClient(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Deliver(ctx, call); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Deliver: %v, want the deadline (request accepted, response refused)", err)
	}
	time.Sleep(250 * time.Millisecond) // past the node's wait for the response half
	responsesDown.Store(false)
	err := c.Deliver(context.Background(), call)
	if missing, _ := dn.CheckDelivered([]string{call.RequestID}); len(missing) > 0 {
		t.Fatalf("call lost: redelivery returned %v", err)
	}
	if err != nil {
		t.Fatalf("redelivery: %v, want nil", err)
	}
}

// A call completed earlier (by a previous owner of the shard, say, or the same
// input replayed) and delivered again is refused twice as a duplicate: it is
// delivered and reported as already held, not a permanent rejection to alarm on,
// and not logged per call above debug.
func TestRedeliveredCompletedCallIsAlreadyHeld(t *testing.T) {
	t.Parallel()
	dn := devnode.New(devnode.DefaultOptions(), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(dn.Handler())
	t.Cleanup(srv.Close)
	call := sampleCall()
	first, _ := testClient(t, srv.URL, nil)
	if err := first.Deliver(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	second, reg, logs := logClient(t, srv.URL, nil)
	for i := range 2 { // another process, then the same one again
		err := second.Deliver(context.Background(), call)
		var held interface{ AlreadyHeld() bool }
		if !errors.Is(err, ErrAlreadyHeld) || errors.Is(err, ErrRejected) || !errors.As(err, &held) || !held.AlreadyHeld() {
			t.Fatalf("redelivery %d of a completed call: %v, want an already-held report", i, err)
		}
	}
	if got := metricValue(t, reg, "apigw_connector_node_rejected_total", nil); got != 0 {
		t.Errorf("rejected_total %v, want 0", got)
	}
	if got := metricValue(t, reg, "apigw_connector_node_already_held_total", nil); got != 2 {
		t.Errorf("already_held_total %v, want 2", got)
	}
	for _, level := range []string{"INFO", "WARN", "ERROR"} {
		if got := logLines(logs, level, ""); len(got) != 0 {
			t.Errorf("%d %s records for calls already held, want none:\n%s", len(got), level, strings.Join(got, "\n"))
		}
	}
}
