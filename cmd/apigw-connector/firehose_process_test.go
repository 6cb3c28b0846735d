package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// TestRunFirehoseEndToEnd runs the real binary as a Firehose HTTP endpoint
// configured by environment variables alone: a delivery is acknowledged only
// after its calls reached the node, metrics and health answer, and SIGTERM
// stops it cleanly.
func TestRunFirehoseEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run")
	u := strings.TrimPrefix(url, "http://")
	cmd.Env = append(os.Environ(),
		"APIGW_CONNECTOR_SOURCE_TYPE=firehose",
		"X_NODE_URL="+u, "X_NODE_SCHEME=http", // the official Lambda's variables
		"APIGW_CONNECTOR_FIREHOSE_LISTEN=127.0.0.1:0", // the addresses come from the log
		"APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS=k-old,k-new",
		"APIGW_CONNECTOR_METRICS_ADDR=127.0.0.1:0",
	)
	logs := &procLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("connector output:\n%s", logs.String())
		}
	})
	listen, metrics := logs.addr(t, logFirehoseListening), logs.addr(t, logMetricsListening)
	waitOK(t, "http://"+listen+"/ping")
	// Ready before any call flowed: the node is probed, not inferred from traffic.
	waitOK(t, "http://"+metrics+"/readyz")

	g := traffic.New(traffic.Options{Seed: 11})
	evs, calls := g.Events(nil, 30)
	body, _ := json.Marshal(map[string]any{
		"requestId": "req-1", "timestamp": time.Now().UnixMilli(),
		"records": []map[string]string{{"data": base64.StdEncoding.EncodeToString(traffic.GzipEnvelope("g", "s", evs))}},
	})
	req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/firehose", bytes.NewReader(body))
	req.Header.Set("X-Amz-Firehose-Request-Id", "req-1")
	req.Header.Set("X-Amz-Firehose-Access-Key", "k-new")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ack, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(ack), `"requestId":"req-1"`) {
		t.Fatalf("ack %d %s", resp.StatusCode, ack)
	}
	// The ack came after delivery: every call is at the node already.
	testenv.AssertDeliveredOnce(t, dn, calls)
	m := get(t, "http://"+metrics+"/metrics")
	for _, want := range []string{"apigw_connector_firehose_deliveries_total", `apigw_connector_pipeline_calls_total{result="delivered"} 30`, "apigw_connector_node_"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitOK polls url until it answers 200 (bounded).
func waitOK(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not OK within 20s (last: %v %v)", url, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
