package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// The issue "every call, once": a bad member or document in the middle of a
// file used to end the file as "1 decode error"; now only it is skipped.
func TestReplaySkipsOnlyTheBadDocumentOfAFile(t *testing.T) {
	t.Parallel()
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	g := traffic.New(traffic.Options{Seed: 12, APIs: 2, EndpointsPerAPI: 3})
	var docs [][]byte
	var ids []string
	for range 6 {
		evs, calls := g.Events(nil, 20)
		docs = append(docs, traffic.Envelope("API-Gateway-Execution-Logs_abc/prod", "s", evs))
		for _, c := range calls {
			ids = append(ids, c.RequestID)
		}
	}
	corrupt := traffic.Gzip(docs[0])
	corrupt[len(corrupt)/2] ^= 0xff
	dir := t.TempDir()
	members := filepath.Join(dir, "firehose-s3-object.gz")
	if err := os.WriteFile(members, bytes.Join([][]byte{traffic.Gzip(docs[0], docs[1]), corrupt, traffic.Gzip(docs[2])}, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "documents.json")
	bad := []byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"cut`)
	if err := os.WriteFile(plain, bytes.Join([][]byte{docs[3], bad, docs[4], docs[5]}, []byte("\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), "--log-format", "text", members, plain)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	testenv.AssertIDsDeliveredOnce(t, dn, ids)
	if !strings.Contains(out, "decode errors:   2") {
		t.Fatalf("summary does not count the two bad stretches:\n%s", out)
	}
	// The logger rate-limits repeats of one message: the first is enough.
	for _, want := range []string{"position=\"gzip member 3 at byte 4920\"", "reason=gzip"} {
		if !strings.Contains(errs, want) {
			t.Errorf("log does not say %q:\n%s\n%s", want, errs, out)
		}
	}
}
