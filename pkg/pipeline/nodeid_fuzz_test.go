package pipeline

import (
	"crypto/sha256"
	"slices"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/cwlogs"
)

// validHeaderValue is what every node id must be: non-empty token characters.
func validNodeID(t *testing.T, id string) {
	t.Helper()
	if id == "" || len(id) > maxNodeIDPrefix+1+2*nodeIDHashBytes {
		t.Fatalf("node id %q: empty or too long", id)
	}
	for i := 0; i < len(id); i++ {
		if !tokenChar[id[i]] {
			t.Fatalf("node id %q: byte %q is not a header token character", id, id[i])
		}
	}
}

// FuzzNodeID: distinct events give distinct node ids, the same event the same
// one, whatever the (client-controlled) request ids say.
func FuzzNodeID(f *testing.F) {
	f.Add("r", "", "g", "s", "1", "2", []byte("line"), []byte("line"), uint32(0), uint32(1))
	f.Add("", "Q8NnAiztIAMEV4w=", "API-Gateway-Execution-Logs_abc/prod", "", "", "x", []byte(""), []byte("a"), uint32(7), uint32(7))
	f.Add("a\x00b", "\xff", "g\x01", "s", "e", "e\x00", []byte("x\n"), []byte("x"), uint32(1<<31), uint32(0))
	f.Fuzz(func(t *testing.T, reqID, extID, group, stream, ev1, ev2 string, line1, line2 []byte, occ1, occ2 uint32) {
		call := &accesslog.APICall{RequestID: reqID, ExtendedRequestID: extID}
		other := &accesslog.APICall{RequestID: reqID + "x"}
		meta := &cwlogs.Meta{LogGroup: group, LogStream: stream}

		k1, k1again, k2 := envelopeKey(meta, []byte(ev1)), envelopeKey(&cwlogs.Meta{LogGroup: group, LogStream: stream}, []byte(ev1)), envelopeKey(meta, []byte(ev2))
		id1 := nodeID(call, &k1)
		validNodeID(t, id1)
		if nodeID(call, &k1again) != id1 {
			t.Fatal("same event, different node ids")
		}
		if ev1 != ev2 && nodeID(call, &k2) == id1 {
			t.Fatalf("events %q and %q share node id %q", ev1, ev2, id1)
		}
		// Moving bytes between group, stream and event id is another event.
		if shifted := envelopeKey(&cwlogs.Meta{LogGroup: group + stream, LogStream: ""}, []byte(ev1)); stream != "" && shifted == k1 {
			t.Fatal("group/stream boundary lost")
		}

		l1, l2 := lineKey(sha256.Sum256(line1), occ1), lineKey(sha256.Sum256(line2), occ2)
		lid := nodeID(other, &l1)
		validNodeID(t, lid)
		if lid != nodeID(other, &l1) {
			t.Fatal("same line, different node ids")
		}
		if (string(line1) != string(line2) || occ1 != occ2) && nodeID(other, &l2) == lid {
			t.Fatalf("lines %q#%d and %q#%d share node id %q", line1, occ1, line2, occ2, lid)
		}
		if l1 == k1 {
			t.Fatal("a line key equals an envelope key")
		}
	})
}

func TestOccurrencesStartOverPerRecord(t *testing.T) {
	t.Parallel()
	var o occurrences
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	got := []uint32{o.next("r1", a), o.next("r1", b), o.next("r1", a), o.next("r2", a), o.next("r2", a)}
	if want := []uint32{0, 0, 1, 0, 1}; !slices.Equal(got, want) {
		t.Fatalf("occurrences %v, want %v", got, want)
	}
}

// BenchmarkNodeID is the per-event cost the node id adds to submitLine.
func BenchmarkNodeID(b *testing.B) {
	call := &accesslog.APICall{RequestID: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}
	meta := &cwlogs.Meta{LogGroup: "/aws/apigateway/shop-prod", LogStream: "0123456789abcdef0123456789abcdef"}
	line := []byte(`{"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","httpMethod":"GET","path":"/prod/pets/42","status":"200","domainName":"abc123.execute-api.us-east-1.amazonaws.com","sourceIp":"203.0.113.7","userAgent":"curl/8.10.1","requestTimeEpoch":"1795515330123"}`)
	id := []byte("37190000000000000000000000000000000000000000000000000001")
	b.Run("envelope", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			k := envelopeKey(meta, id)
			_ = nodeID(call, &k)
		}
	})
	b.Run("line", func(b *testing.B) {
		var o occurrences
		b.ReportAllocs()
		for range b.N {
			sum := sha256.Sum256(line)
			k := lineKey(sum, o.next("r", sum))
			_ = nodeID(call, &k)
		}
	})
}
