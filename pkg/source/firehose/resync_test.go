package firehose

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// A Firehose record holding several documents, one of them bad, is
// acknowledged only after every call of the other documents reached the
// node: documents, not records, are the unit of failure.
func TestRecordWithABadDocumentDeliversTheOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig())
	g := traffic.New(traffic.Options{Seed: 11})
	var docs [][]byte
	var calls []traffic.Call
	for range 4 {
		evs, cs := g.Events(nil, 5)
		docs = append(docs, traffic.Envelope("g", "s", evs))
		calls = append(calls, cs...)
	}
	bad := []byte(`{"messageType":"DATA_MESSAGE","owner":"o","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"1","message":"cut`)
	members := bytes.Join([][]byte{traffic.Gzip(docs[0]), traffic.Gzip(bad), []byte("garbage"), traffic.Gzip(docs[1])}, nil)
	plain := bytes.Join([][]byte{docs[2], []byte("not json"), docs[3]}, []byte("\n"))
	r := e.post(delivery{id: "resync-1", records: [][]byte{members, plain}})
	if r.status != http.StatusOK {
		t.Fatalf("status %d (%s)", r.status, r.raw)
	}
	e.assertDeliveredOnce(calls)
}
