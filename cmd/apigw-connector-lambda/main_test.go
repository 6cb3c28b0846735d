package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/internal/testenv/devnodetest"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// runtimeAPI is an in-process stand-in for the Lambda Runtime API (no
// emulator is available here): it hands out queued events on /next and
// records what the function answers.
type runtimeAPI struct {
	mu       sync.Mutex
	queue    [][]byte
	answers  map[string]string // request id -> "response: ..." or "error: ..."
	answered chan struct{}
	seq      int
}

func (r *runtimeAPI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	const base = "/2018-06-01/runtime/"
	path := strings.TrimPrefix(req.URL.Path, base)
	switch {
	case req.Method == http.MethodGet && path == "invocation/next":
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.mu.Unlock()
			<-req.Context().Done() // no more events: park the function like Lambda does
			return
		}
		ev := r.queue[0]
		r.queue = r.queue[1:]
		r.seq++
		id := "inv-" + strconv.Itoa(r.seq)
		r.mu.Unlock()
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:apigw-connector")
		w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
		_, _ = w.Write(ev)
	case req.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		parts := strings.Split(path, "/") // invocation/{id}/response|error
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.answers[parts[1]] = parts[2] + ": " + string(body)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		r.answered <- struct{}{}
	case req.Method == http.MethodPost && path == "init/error":
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.answers["init"] = "error: " + string(body)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		r.answered <- struct{}{}
	default:
		http.NotFound(w, req)
	}
}

// TestBootstrapServesEvents builds the function binary, runs it against the
// runtime API stand-in and devnode, and checks both event types end to end.
func TestBootstrapServesEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	if out, err := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	node, nodeURL := devnodetest.Start(t, devnode.DefaultOptions())

	g := traffic.New(traffic.DefaultOptions())
	evs, calls := g.Events(nil, 20)
	cwl, _ := json.Marshal(events.CloudwatchLogsEvent{AWSLogs: events.CloudwatchLogsRawData{
		Data: base64.StdEncoding.EncodeToString(traffic.GzipEnvelope("/aws/apigw/a", "s", evs))}})
	recs := g.Records(2, 5, 5)
	kev := events.KinesisEvent{}
	for i, r := range recs {
		calls = append(calls, r.Calls...)
		kev.Records = append(kev.Records, events.KinesisEventRecord{EventSource: "aws:kinesis", EventName: "aws:kinesis:record",
			Kinesis: events.KinesisRecord{Data: r.Data, SequenceNumber: fmt.Sprint(100 + i), PartitionKey: "p"}})
	}
	kin, _ := json.Marshal(kev)

	api := &runtimeAPI{queue: [][]byte{cwl, kin}, answers: map[string]string{}, answered: make(chan struct{}, 8)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{
		"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(),
		"X_NODE_URL=" + strings.TrimPrefix(nodeURL, "http://"),
		"X_NODE_SCHEME=http",
		"PATH=/usr/bin:/bin",
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for range 2 {
		select {
		case <-api.answered:
		case err := <-waited:
			t.Fatalf("bootstrap exited: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		case <-ctx.Done():
			t.Fatalf("no answer in time\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}
	cancel()
	<-waited

	api.mu.Lock()
	defer api.mu.Unlock()
	if got := api.answers["inv-1"]; got != "response: null" {
		t.Errorf("subscription event answer %q, want response: null", got)
	}
	if got := api.answers["inv-2"]; got != `response: {"batchItemFailures":[]}` {
		t.Errorf("Kinesis event answer %q, want an empty batchItemFailures", got)
	}
	testenv.AssertDeliveredOnce(t, node, calls)
	summaries := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stdout line is not JSON: %q", line)
			continue
		}
		if m["msg"] == "invocation done" {
			summaries++
		}
	}
	if summaries != 2 {
		t.Errorf("%d invocation summaries on stdout, want 2:\n%s", summaries, stdout.String())
	}
}
