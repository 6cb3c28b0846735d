package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

var metricName = regexp.MustCompile(`\bapigw_connector_[a-z0-9_]+`)

// dashboardExprs returns every PromQL expression of the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/apigw-connector.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has a target without an expression", p.Title)
			}
			out = append(out, tg.Expr)
		}
	}
	if len(out) < 15 {
		t.Fatalf("dashboard has %d expressions, want the full set", len(out))
	}
	return out
}

// TestDashboardExpressionsParse runs every dashboard expression through
// promtool's PromQL parser (as recording rules), with Grafana's variables
// filled in.
func TestDashboardExpressionsParse(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install it (apt-get install prometheus; .ci/run does)")
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardExprs(t) {
		e = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*").Replace(e)
		q, _ := json.Marshal(e)
		fmt.Fprintf(&rules, "      - record: dashboard:expr_%d\n        expr: %s\n", i, q)
	}
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", p).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestDashboardAndAlertMetricsExist scrapes running connectors (a Kinesis
// worker on the emulators and a Firehose endpoint, driven into retries,
// rejections and bad input) and checks that every metric the dashboard and
// the alert rules name is one they export.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Listeners on port 0: the addresses come from the processes' logs.
	start := func(name string, args []string, env []string) *procLog {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), env...)
		logs := &procLog{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, tailLines(logs.String(), 30))
			}
		})
		return logs
	}

	// Kinesis worker; its node fails with 503 until the worker has retried.
	kep, dep := testenv.StartKinesisMock(t), testenv.StartDynalite(t)
	kc := testenv.KinesisClient(t, kep)
	stream := fmt.Sprintf("dash-%d", os.Getpid())
	testenv.CreateStream(t, kc, stream, 1)
	kdn, kurl := startDevnode(t, devnode.DefaultOptions(), nil)
	kdn.SetFailing(503, time.Hour)
	kcfg := writeConfig(t, kurl, fmt.Sprintf("source:\n  type: kinesis\nkinesis:\n  stream: %s\n  application_name: %s-app\n  failover_time: 1500ms\n  checkpoint_interval: 300ms\n", stream, stream))
	kLogs := start("kinesis worker", []string{"run", "--config", kcfg, "--metrics-addr", "127.0.0.1:0"}, testenv.AWSEnv(kep, dep))
	g := traffic.New(traffic.Options{Seed: 5})
	var recs []testenv.Record
	for i, r := range g.Records(5, 5, 10) {
		recs = append(recs, testenv.Record{PartitionKey: fmt.Sprint("pk-", i), Data: r.Data})
	}
	recs = append(recs, testenv.Record{PartitionKey: "garbage", Data: []byte("\x1f\x8bnot gzip at all")})
	testenv.PutRecords(t, kc, stream, recs...)

	// Firehose endpoint; its node rejects (400) for its first seconds.
	fdn, furl := startDevnode(t, devnode.DefaultOptions(), nil)
	fdn.SetFailing(400, 3*time.Second)
	fLogs := start("firehose endpoint", []string{"run", "--metrics-addr", "127.0.0.1:0"}, []string{
		"APIGW_CONNECTOR_SOURCE_TYPE=firehose", "APIGW_CONNECTOR_NODE_URL=" + furl,
		"APIGW_CONNECTOR_FIREHOSE_LISTEN=127.0.0.1:0", "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS=key",
	})
	kMetrics, fMetrics := kLogs.addr(t, logMetricsListening), fLogs.addr(t, logMetricsListening)
	fListen := fLogs.addr(t, logFirehoseListening)
	waitOK(t, "http://"+fListen+"/ping")
	evs, _ := g.Events(nil, 5)
	evs = append(evs, traffic.LogEvent{ID: "1", Timestamp: time.Now().UnixMilli(), Message: "not an access log line"})
	post := func(id, key string, data []byte) int {
		body, _ := json.Marshal(map[string]any{"requestId": id, "timestamp": time.Now().UnixMilli(),
			"records": []map[string]string{{"data": base64.StdEncoding.EncodeToString(data)}}})
		req, _ := http.NewRequest(http.MethodPost, "http://"+fListen+"/firehose", bytes.NewReader(body))
		req.Header.Set("X-Amz-Firehose-Request-Id", id)
		req.Header.Set("X-Amz-Firehose-Access-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("bad-key", "wrong", nil); code != 401 && code != 403 {
		t.Fatalf("wrong key answered %d", code)
	}
	if code := post("d1", "key", traffic.GzipEnvelope("/aws/apigateway/x", "s", evs)); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}

	needed := map[string][]string{} // metric -> where it is used
	for _, e := range dashboardExprs(t) {
		for _, m := range metricName.FindAllString(e, -1) {
			needed[m] = append(needed[m], "dashboard")
		}
	}
	alerts, err := os.ReadFile("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricName.FindAllString(string(alerts), -1) {
		needed[m] = append(needed[m], "alerts")
	}

	exported := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, addr := range []string{kMetrics, fMetrics} {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				continue
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(b.String(), "\n") {
				if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
					f := strings.Fields(name)
					exported[f[0]] = true
					if len(f) > 1 && f[1] == "histogram" {
						for _, s := range []string{"_bucket", "_sum", "_count"} {
							exported[f[0]+s] = true
						}
					}
				}
			}
		}
		if exported["apigw_connector_node_retries_total"] {
			kdn.SetFailing(0, 0) // retried: let the calls through
		}
		var missing []string
		for m := range needed {
			if !exported[m] {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(missing)
			for _, m := range missing {
				t.Errorf("%s (used by %s) is not exported by a running connector", m, strings.Join(slices.Compact(needed[m]), ", "))
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
