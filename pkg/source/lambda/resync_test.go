package lambda

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// A subscription event or Kinesis record whose data holds a bad gzip member
// between good ones succeeds once every call of the good ones is delivered:
// the bad member never gets better with retries, the others must not be lost.
func TestBadMemberInsideAnEventDeliversTheRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := generator(21)
	evsA, callsA := g.Events(nil, 10)
	evsB, callsB := g.Events(nil, 10)
	truncated := traffic.GzipEnvelope("g", "s", evsA)[:30]
	data := bytes.Join([][]byte{traffic.GzipEnvelope("g", "s", evsA), truncated, traffic.GzipEnvelope("g", "s", evsB)}, nil)
	if _, err := e.h.Invoke(withDeadline(t, 30*time.Second), awslogsPayload(data)); err != nil {
		t.Fatalf("subscription event: %v", err)
	}
	e.assertDeliveredOnce(t, append(callsA, callsB...))

	evsC, callsC := g.Events(nil, 10)
	evsD, callsD := g.Events(nil, 10)
	kdata := bytes.Join([][]byte{traffic.GzipEnvelope("g", "s", evsC), []byte("garbage"), traffic.GzipEnvelope("g", "s", evsD)}, nil)
	payload, _ := kinesisPayload(kdata)
	out, err := e.h.Invoke(withDeadline(t, 30*time.Second), payload)
	if err != nil {
		t.Fatalf("Kinesis event: %v", err)
	}
	var resp events.KinesisEventResponse
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("output %s (%v), want no batch item failure", out, err)
	}
	e.assertDeliveredOnce(t, append(callsC, callsD...))
}
