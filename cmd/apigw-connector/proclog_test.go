package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

// procLog is a child process's output (set as its Stdout and Stderr), safe to
// read while the process writes it.
type procLog struct{ testkit.SyncBuffer }

// addr waits until the process logs msg (JSON log lines) and returns the line's
// "addr". A listener the process bound on port 0 is known this way: a port picked
// free beforehand can be taken by another test's server before the child binds it,
// and a test would then talk to that server.
func (l *procLog) addr(t *testing.T, msg string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, line := range strings.Split(l.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg && rec.Addr != "" {
				return rec.Addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line with an addr within 30s; output:\n%s", msg, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The log lines the tests learn listener addresses from.
const (
	logFirehoseListening = "firehose endpoint listening"
	logMetricsListening  = "metrics listener started"
)
