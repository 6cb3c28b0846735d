package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// buildBinary builds the real apigw-connector once per test run, for tests
// that need a separate process (signals, kill -9).
func buildBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "apigw-connector-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "apigw-connector")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startDevnode runs a devnode on a free loopback port; wrap may intercept messages.
func startDevnode(t *testing.T, o devnode.Options, wrap func(http.Handler) http.Handler) (*devnode.Server, string) {
	t.Helper()
	dn := devnode.New(o, nil, quietLog())
	h := dn.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return dn, srv.URL
}

// writeConfig writes a YAML config for the node at url with fast retries.
func writeConfig(t *testing.T, url string, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "connector.yaml")
	body := fmt.Sprintf("node:\n  url: %s\n  concurrency: 16\n  reply_timeout: 1s\n  retry:\n    initial_backoff: 20ms\n    max_backoff: 300ms\n%s", url, extra)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// genInputs writes n calls as a gzip CloudWatch Logs file and as a lines file.
func genInputs(t *testing.T, seed int64, n int) (gzFile, linesFile string, ids []string) {
	t.Helper()
	g := traffic.New(traffic.Options{Seed: seed, APIs: 3, EndpointsPerAPI: 5})
	dir := t.TempDir()
	var docs [][]byte
	half := n / 2
	for done := 0; done < half; {
		k := min(25, half-done)
		evs, calls := g.Events(nil, k)
		docs = append(docs, traffic.Envelope("API-Gateway-Execution-Logs_abc/prod", "s", evs))
		for _, c := range calls {
			ids = append(ids, c.RequestID)
		}
		done += k
	}
	gzFile = filepath.Join(dir, "records.json.gz")
	if err := os.WriteFile(gzFile, traffic.Gzip(docs...), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	for range n - half {
		c := g.Next()
		lines.Write(g.AppendLine(nil, &c))
		lines.WriteByte('\n')
		ids = append(ids, c.RequestID)
	}
	linesFile = filepath.Join(dir, "access.log")
	if err := os.WriteFile(linesFile, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return gzFile, linesFile, ids
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestReplayDeliversEveryCallAsAPair(t *testing.T) {
	t.Parallel()
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	gzFile, linesFile, ids := genInputs(t, 1, 400)
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), "--log-format", "text", gzFile, linesFile)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	testenv.AssertIDsDeliveredOnce(t, dn, ids)
	if st := dn.Stats(); st.Completed != int64(len(ids)) || len(st.Rejects) != 0 {
		t.Fatalf("node stats %+v", st)
	}
	if !strings.Contains(out, fmt.Sprintf("delivered:       %d", len(ids))) {
		t.Fatalf("summary does not report %d delivered:\n%s", len(ids), out)
	}
}

func TestReplayFromStdin(t *testing.T) {
	t.Parallel()
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	_, linesFile, ids := genInputs(t, 2, 20)
	data, _ := os.ReadFile(linesFile)
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--config", writeConfig(t, url, ""), "-"}, bytes.NewReader(data), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	testenv.AssertIDsDeliveredOnce(t, dn, ids[len(ids)-10:])
}

// Events that failed every Lambda attempt reach the failure queue as
// on-failure invocation records; saved one message body per line, replay
// delivers their calls.
func TestReplayDeliversLambdaFailureQueueRecords(t *testing.T) {
	t.Parallel()
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	g := traffic.New(traffic.Options{Seed: 4, APIs: 2, EndpointsPerAPI: 3})
	var bodies bytes.Buffer
	var ids []string
	for i := range 4 {
		evs, calls := g.Events(nil, 10)
		for _, c := range calls {
			ids = append(ids, c.RequestID)
		}
		data := base64.StdEncoding.EncodeToString(traffic.GzipEnvelope("API-Gateway-Execution-Logs_abc/prod", "s", evs))
		fmt.Fprintf(&bodies, `{"version":"1.0","timestamp":"2026-11-24T10:15:30.000Z","requestContext":{"requestId":"req-%d","condition":"RetriesExhausted","approximateInvokeCount":3},"requestPayload":{"awslogs":{"data":%q}},"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"responsePayload":{"errorMessage":"calls not delivered before the invocation deadline"}}`+"\n", i, data)
	}
	f := filepath.Join(t.TempDir(), "failed-events.jsonl")
	if err := os.WriteFile(f, bodies.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), f)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	testenv.AssertIDsDeliveredOnce(t, dn, ids)
}

func TestReplayRidesOutANodeOutage(t *testing.T) {
	t.Parallel()
	const outage = 10 * time.Second
	o := devnode.DefaultOptions()
	o.FailFor = outage
	o.FailStatus = http.StatusServiceUnavailable
	start := time.Now() // the outage starts with the node
	dn, url := startDevnode(t, o, nil)
	gzFile, _, ids := genInputs(t, 3, 300)
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), gzFile)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if time.Since(start) < outage-100*time.Millisecond {
		t.Fatalf("replay finished during the outage: something was not delivered for real")
	}
	testenv.AssertIDsDeliveredOnce(t, dn, ids[:150])
	if !strings.Contains(out, "503=") || strings.Contains(out, "retries:         0") {
		t.Fatalf("retries not counted:\n%s", out)
	}
}

func TestReplayRetriesWhenTheNodeStallsPastTheReplyTimeout(t *testing.T) {
	t.Parallel()
	o := devnode.DefaultOptions()
	o.Latency = 3 * time.Second // reply_timeout is 1s
	dn, url := startDevnode(t, o, nil)
	time.AfterFunc(2500*time.Millisecond, func() { dn.SetLatency(0) })
	gzFile, _, ids := genInputs(t, 4, 40)
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), gzFile)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	// A message cut by the reply timeout had an unseen outcome: the node may
	// still process it (behind a pipelined message net/http does not notice the
	// close), and its resend is then refused as a duplicate. None may be missing.
	testenv.AssertNoneLostIDs(t, dn, ids[:20])
	if strings.Contains(out, "retries:         0") {
		t.Fatalf("stall did not cause retries:\n%s", out)
	}
}

func TestReplayCountsPermanentRejectionsAndDeliversTheRest(t *testing.T) {
	t.Parallel()
	const blocked, malformed = "blocked.example.com", "malformed.example.com"
	dn, url := startDevnode(t, devnode.DefaultOptions(), func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Host {
			case blocked: // a node whose allowed_hosts excludes this API
				w.WriteHeader(http.StatusUnsupportedMediaType)
			case malformed: // a message the node cannot take
				http.Error(w, "bad message", http.StatusBadRequest)
			default:
				next.ServeHTTP(w, r)
			}
		})
	})
	g := traffic.New(traffic.Options{Seed: 5})
	var lines bytes.Buffer
	var good []string
	var twice string
	for i := range 30 {
		c := g.Next()
		switch i {
		case 3:
			c.Host = blocked
		case 5:
			c.Host = malformed
		case 7:
			twice = c.RequestID
		default:
			good = append(good, c.RequestID)
		}
		lines.Write(g.AppendLine(nil, &c))
		lines.WriteByte('\n')
		if i == 7 { // the same call logged twice: the node keeps it once, it is not a rejection
			lines.Write(g.AppendLine(nil, &c))
			lines.WriteByte('\n')
		}
	}
	f := filepath.Join(t.TempDir(), "a.log")
	if err := os.WriteFile(f, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), f)
	if code != 1 {
		t.Fatalf("exit %d, want 1 for rejected calls\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "rejected:        2 (400=1, 415=1)") || !strings.Contains(out, "delivered:       29 ") ||
		!strings.Contains(out, "retries:         0") {
		t.Fatalf("summary:\n%s", out)
	}
	testenv.AssertIDsDeliveredOnce(t, dn, good)
	if dn.DeliveredIDs()[twice] == 0 {
		t.Fatal("the call logged twice was not delivered")
	}
}

func TestReplaySIGTERMLetsInFlightCallsFinishOrReportsThem(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	o := devnode.DefaultOptions()
	o.Latency = 200 * time.Millisecond
	dn, url := startDevnode(t, o, nil)
	gzFile, _, _ := genInputs(t, 6, 2000) // ~1000 calls at 16 in flight and 2x200ms each: ~25 s unless stopped
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "replay", "--config", writeConfig(t, url, ""), "--grace", "1s", gzFile)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for dn.Stats().Completed < 20 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1 (incomplete)\n%s\n%s", err, out.String(), errb.String())
	}
	var parsed, delivered, undelivered int
	for _, l := range strings.Split(out.String(), "\n") {
		fmt.Sscanf(strings.TrimSpace(l), "calls parsed: %d", &parsed)
		fmt.Sscanf(strings.TrimSpace(l), "delivered: %d", &delivered)
		fmt.Sscanf(strings.TrimSpace(l), "undelivered: %d", &undelivered)
	}
	if parsed == 0 || delivered+undelivered != parsed {
		t.Fatalf("summary does not account for every call: parsed %d, delivered %d, undelivered %d\n%s", parsed, delivered, undelivered, out.String())
	}
	if got := int(dn.Stats().Completed); got < delivered {
		t.Fatalf("summary claims %d delivered, node completed %d", delivered, got)
	}
	if !strings.Contains(errb.String(), "replay incomplete") {
		t.Fatalf("no incomplete message: %s", errb.String())
	}
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	good := writeConfig(t, "http://127.0.0.1:5050", "kinesis:\n  stream: s\nfirehose:\n  access_keys: [topsecret]\n")
	code, out, errs := runCmd(t, "check-config", "--config", good)
	if code != 0 || !strings.Contains(out, "url: http://127.0.0.1:5050") || strings.Contains(out, "topsecret") {
		t.Fatalf("valid config: exit %d\n%s\n%s", code, out, errs)
	}
	bad := writeConfig(t, "http://127.0.0.1:5050", "")
	code, _, errs = runCmd(t, "check-config", "--config", bad)
	if code != 1 || !strings.Contains(errs, "kinesis.stream") {
		t.Fatalf("missing stream: exit %d: %s", code, errs)
	}
	code, out, _ = runCmd(t, "check-config", "--list")
	if code != 0 || !strings.Contains(out, "APIGW_CONNECTOR_NODE_URL") {
		t.Fatalf("list: %d %s", code, out)
	}
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	if code, out, _ := runCmd(t, "version"); code != 0 || !strings.HasPrefix(out, "apigw-connector ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errs := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
}
