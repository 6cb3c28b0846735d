package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/emulator"
)

// The marker is fed through every setting that can hold a secret; the YAML
// decoder quotes a value's first 7 bytes, so the output is searched for 5.
const (
	secretMarker = "Zq7XwS3CR3T"
	secretSeen   = "Zq7Xw"
)

// runBinary runs the real binary with env on top of a minimal environment
// and returns its exit code and everything it wrote (stdout and stderr).
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildBinary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("run %v: %v\n%s", args, err, out.String())
	return 0, ""
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	if i := strings.Index(out, secretSeen); i >= 0 {
		t.Fatalf("%s printed the secret:\n...%.400s", what, out[max(0, i-200):])
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Invalid settings that hold a secret: check-config and run both refuse
// them (exit 1) and neither prints the secret, whatever the form.
func TestSecretsInInvalidSettingsAreNotPrinted(t *testing.T) {
	t.Parallel()
	const m = secretMarker
	firehose := []string{"APIGW_CONNECTOR_SOURCE_TYPE=firehose", "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS=k", "APIGW_CONNECTOR_FIREHOSE_LISTEN=127.0.0.1:0", "APIGW_CONNECTOR_METRICS_ADDR=off"}
	node := "APIGW_CONNECTOR_NODE_URL=http://127.0.0.1:1"
	urls := []string{
		"http://admin:" + m + "@127.0.0.1:1",
		"http://admin:" + m + "#frag@127.0.0.1:1",
		"http://admin:" + m + "/x@127.0.0.1:1",
		"http://admin:" + m + "?x@127.0.0.1:1",
		"http://admin:" + m + "%zz@127.0.0.1:1",
		"http://admin:12345/" + m + "@127.0.0.1:1", // parses as host admin, port 12345
		"https://" + m + "@127.0.0.1:1/prefix",
	}
	type tc struct {
		name string
		env  []string
		yaml string
	}
	var tests []tc
	for i, u := range urls {
		tests = append(tests,
			tc{name: fmt.Sprintf("env url %d", i), env: append([]string{"APIGW_CONNECTOR_NODE_URL=" + u}, firehose...)},
			tc{name: fmt.Sprintf("yaml url %d", i), env: firehose, yaml: "node:\n  url: " + strconv.Quote(u) + "\n"})
	}
	tests = append(tests,
		tc{name: "X_NODE_URL", env: append([]string{"X_NODE_URL=admin:" + m + "/x@127.0.0.1:1", "X_NODE_SCHEME=http"}, firehose...)},
		tc{name: "yaml header with a control byte", env: append([]string{node}, firehose...), yaml: "node:\n  extra_headers:\n    X-Token: \"" + m + "\\u0001\"\n"},
		tc{name: "env header without =", env: append([]string{node, "APIGW_CONNECTOR_NODE_EXTRA_HEADERS=X-Token" + m}, firehose...)},
		tc{name: "yaml headers as a scalar", env: append([]string{node}, firehose...), yaml: "node:\n  extra_headers: " + m + "\n"},
		tc{name: "yaml access keys as a scalar", env: []string{node, "APIGW_CONNECTOR_SOURCE_TYPE=firehose"}, yaml: "firehose:\n  access_keys: " + m + "\n"},
		tc{name: "yaml access keys as a mapping", env: []string{node, "APIGW_CONNECTOR_SOURCE_TYPE=firehose"}, yaml: "firehose:\n  access_keys: {" + m + ": 1}\n"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if tt.yaml != "" {
				env = append(env, "APIGW_CONNECTOR_CONFIG="+writeFile(t, "c.yaml", tt.yaml))
			}
			for _, args := range [][]string{{"check-config"}, {"run"}} {
				code, out := runBinary(t, env, args...)
				if code != 1 {
					t.Fatalf("%s: exit %d, want 1 (refused):\n%s", args[0], code, out)
				}
				assertNoSecret(t, args[0], out)
			}
		})
	}
}

// Valid settings that hold a secret (extra header values, access keys,
// the access key file's and the TLS key file's contents): check-config
// redacts them, and run logs nothing of them while it starts, probes an
// unreachable node, takes a delivery and stops; a bad TLS key file fails
// run without its contents.
func TestSecretsInValidSettingsAreNotPrinted(t *testing.T) {
	t.Parallel()
	const m = secretMarker
	keyFile := writeFile(t, "keys", "# keys\n"+m+"-file\n")
	yaml := "node:\n  extra_headers:\n    X-Token: " + m + "-yaml\n    X-List: \"" + m + ",x\"\nfirehose:\n  access_keys: [" + m + "-yaml]\n"
	tests := []struct {
		name string
		env  []string
		yaml string
		key  string // the access key a delivery is sent with
	}{
		{name: "yaml", yaml: yaml, key: m + "-yaml"},
		{name: "env", key: m + "-env", env: []string{
			"APIGW_CONNECTOR_NODE_EXTRA_HEADERS=X-Token=" + m + `-env,X-List=` + m + `\,x`,
			"APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS=" + m + "-env,other",
		}},
		{name: "key file", key: m + "-file", env: []string{"APIGW_CONNECTOR_FIREHOSE_ACCESS_KEY_FILE=" + keyFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ports, err := emulator.FreePorts(1)
			if err != nil {
				t.Fatal(err)
			}
			env := append([]string{
				"APIGW_CONNECTOR_NODE_URL=http://127.0.0.1:" + strconv.Itoa(ports[0]), // nothing listens: probe warnings
				"APIGW_CONNECTOR_SOURCE_TYPE=firehose",
				"APIGW_CONNECTOR_FIREHOSE_LISTEN=127.0.0.1:0", // the address comes from the log
				"APIGW_CONNECTOR_FIREHOSE_ACK_DEADLINE=500ms",
				"APIGW_CONNECTOR_METRICS_ADDR=127.0.0.1:0",
				"APIGW_CONNECTOR_LOG_LEVEL=debug",
			}, tt.env...)
			if tt.yaml != "" {
				env = append(env, "APIGW_CONNECTOR_CONFIG="+writeFile(t, "c.yaml", tt.yaml))
			}
			code, out := runBinary(t, env, "check-config")
			if code != 0 || (tt.yaml != "" || tt.env[0] != "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEY_FILE="+keyFile) && !strings.Contains(out, "<redacted>") {
				t.Fatalf("check-config: exit %d, want 0 with values redacted:\n%s", code, out)
			}
			assertNoSecret(t, "check-config", out)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, buildBinary(t), "run")
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
			logs := &procLog{}
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			listen := logs.addr(t, logFirehoseListening)
			waitOK(t, "http://"+listen+"/ping")
			body := fmt.Sprintf(`{"requestId":"r1","timestamp":1,"records":[{"data":%q}]}`, base64.StdEncoding.EncodeToString([]byte("not a log line\n")))
			for _, key := range []string{tt.key, "wrong-key"} {
				req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/firehose", strings.NewReader(body))
				req.Header.Set("X-Amz-Firehose-Request-Id", "r1")
				req.Header.Set("X-Amz-Firehose-Access-Key", key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if want := map[bool]int{true: 200, false: 401}[key == tt.key]; resp.StatusCode != want {
					t.Fatalf("delivery with key %q: status %d, want %d", key, resp.StatusCode, want)
				}
			}
			time.Sleep(300 * time.Millisecond) // a probe round against the unreachable node
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if !strings.Contains(logs.String(), "starting") {
				t.Fatalf("run did not start:\n%s", logs.String())
			}
			assertNoSecret(t, "run", logs.String())
		})
	}

	t.Run("tls key file", func(t *testing.T) {
		t.Parallel()
		badKey := writeFile(t, "key.pem", "-----BEGIN PRIVATE KEY-----\n"+m+"\n-----END PRIVATE KEY-----\n")
		cert := writeFile(t, "cert.pem", "not a certificate "+m+"\n")
		env := []string{"APIGW_CONNECTOR_NODE_URL=https://127.0.0.1:1", "APIGW_CONNECTOR_SOURCE_TYPE=firehose",
			"APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS=k", "APIGW_CONNECTOR_FIREHOSE_LISTEN=127.0.0.1:0", "APIGW_CONNECTOR_METRICS_ADDR=off",
			"APIGW_CONNECTOR_NODE_TLS_CERT_FILE=" + cert, "APIGW_CONNECTOR_NODE_TLS_KEY_FILE=" + badKey}
		code, out := runBinary(t, env, "check-config")
		assertNoSecret(t, "check-config", out)
		if code != 0 {
			t.Logf("check-config exit %d", code)
		}
		code, out = runBinary(t, env, "run")
		if code == 0 {
			t.Fatalf("run accepted an unreadable TLS key pair:\n%s", out)
		}
		assertNoSecret(t, "run", out)
	})
}

// The escape for a comma inside a list item or map value is documented
// where the variables are listed.
func TestCheckConfigListDocumentsTheCommaEscape(t *testing.T) {
	t.Parallel()
	code, out, errs := runCmd(t, "check-config", "--list")
	if code != 0 || !strings.Contains(out, `\, is a comma inside`) {
		t.Fatalf("exit %d; --list does not document the comma escape:\n%s%s", code, out, errs)
	}
}
