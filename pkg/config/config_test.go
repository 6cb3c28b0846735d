package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env fakes the process environment so tests can run in parallel.
func env(kv ...string) (func(string) string, []string) {
	m := map[string]string{}
	var list []string
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
		list = append(list, kv[i]+"="+kv[i+1])
	}
	return func(k string) string { return m[k] }, list
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvOverridesFollowOneRule(t *testing.T) {
	t.Parallel()
	getenv, environ := env(
		"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:5050",
		"APIGW_CONNECTOR_SOURCE_TYPE", "firehose",
		"APIGW_CONNECTOR_METRICS_ADDR", "127.0.0.1:9999",
		"APIGW_CONNECTOR_NODE_REPLY_TIMEOUT", "7s",
		"APIGW_CONNECTOR_NODE_CONCURRENCY", "12",
		"APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS", "k1, k2",
		"APIGW_CONNECTOR_NODE_EXTRA_HEADERS", "X-App-Id=42,X-Env=prod",
		"APIGW_CONNECTOR_KINESIS_STREAM", "logs",
	)
	cfg, err := Load("", getenv, environ)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.URL != "http://127.0.0.1:5050" || cfg.Source.Type != "firehose" || cfg.Metrics.Addr != "127.0.0.1:9999" {
		t.Fatalf("strings not applied: %+v %+v %+v", cfg.Node.URL, cfg.Source, cfg.Metrics)
	}
	if cfg.Node.ReplyTimeout != 7*time.Second || cfg.Node.Concurrency != 12 || cfg.Pipeline.Workers != 12 {
		t.Fatalf("duration/int not applied: %v %d %d", cfg.Node.ReplyTimeout, cfg.Node.Concurrency, cfg.Pipeline.Workers)
	}
	if strings.Join(cfg.Firehose.AccessKeys, "|") != "k1|k2" {
		t.Fatalf("list: %q", cfg.Firehose.AccessKeys)
	}
	if cfg.Node.ExtraHeaders["X-App-Id"] != "42" || cfg.Node.ExtraHeaders["X-Env"] != "prod" {
		t.Fatalf("map: %v", cfg.Node.ExtraHeaders)
	}
	if cfg.Kinesis.Stream != "logs" {
		t.Fatalf("kinesis.stream: %q", cfg.Kinesis.Stream)
	}
}

func TestEverySettingHasItsEnvName(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, s := range Settings() {
		want := "APIGW_CONNECTOR_" + strings.ToUpper(strings.ReplaceAll(s.Path, ".", "_"))
		if s.Env != want {
			t.Errorf("%s: env %s, want %s", s.Path, s.Env, want)
		}
		if other, dup := seen[s.Env]; dup {
			t.Errorf("%s and %s share env %s", s.Path, other, s.Env)
		}
		seen[s.Env] = s.Path
	}
	for _, must := range []string{"APIGW_CONNECTOR_NODE_URL", "APIGW_CONNECTOR_SOURCE_TYPE", "APIGW_CONNECTOR_METRICS_ADDR",
		"APIGW_CONNECTOR_KINESIS_STREAM", "APIGW_CONNECTOR_FIREHOSE_LISTEN", "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS"} {
		if seen[must] == "" {
			t.Errorf("setting for %s missing (users and templates depend on it)", must)
		}
	}
}

func TestLegacyLambdaVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kv   []string
		file string
		want string
	}{
		{"host and scheme", []string{"X_NODE_URL", "node.internal:5050", "X_NODE_SCHEME", "http"}, "", "http://node.internal:5050"},
		{"scheme defaults to https", []string{"X_NODE_URL", "node.internal:5050"}, "", "https://node.internal:5050"},
		{"full url kept", []string{"X_NODE_URL", "http://n:1"}, "", "http://n:1"},
		{"product variable wins", []string{"X_NODE_URL", "a:1", "APIGW_CONNECTOR_NODE_URL", "http://b:2"}, "", "http://b:2"},
		{"file wins over legacy", []string{"X_NODE_URL", "a:1"}, "node:\n  url: http://c:3\n", "http://c:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			getenv, environ := env(tt.kv...)
			cfg, err := Load(path, getenv, environ)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Node.URL != tt.want {
				t.Fatalf("node.url %q, want %q", cfg.Node.URL, tt.want)
			}
		})
	}
}

func TestBadConfigurationNamesTheSettingAndTheFix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		kv    []string
		want  []string
		onRun bool
	}{
		{"unknown yaml key", "node:\n  ulr: http://x\n", nil, []string{"ulr"}, false},
		{"unknown env variable", "", []string{"APIGW_CONNECTOR_NODE_ULR", "x"}, []string{"APIGW_CONNECTOR_NODE_ULR", "check-config --list"}, false},
		{"bad duration", "", []string{"APIGW_CONNECTOR_NODE_REPLY_TIMEOUT", "5"}, []string{"APIGW_CONNECTOR_NODE_REPLY_TIMEOUT", "node.reply_timeout", "duration"}, false},
		{"bad int", "", []string{"APIGW_CONNECTOR_NODE_CONCURRENCY", "many"}, []string{"node.concurrency", "integer"}, false},
		{"unknown source", "", []string{"APIGW_CONNECTOR_NODE_URL", "http://n:1", "APIGW_CONNECTOR_SOURCE_TYPE", "sqs"}, []string{"source.type", "kinesis"}, true},
		{"tiny decode cap", "", []string{"APIGW_CONNECTOR_NODE_URL", "http://n:1", "APIGW_CONNECTOR_DECODE_MAX_DECOMPRESSED_BYTES", "10"}, []string{"decode.max_decompressed_bytes"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			getenv, environ := env(tt.kv...)
			cfg, err := Load(path, getenv, environ)
			if err == nil && tt.onRun {
				err = cfg.ValidateForRun()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExampleConfigIsCompleteAndValid(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "configs", "apigw-connector.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	getenv, environ := env()
	cfg, err := Load(path, getenv, environ)
	if err != nil {
		t.Fatalf("example config does not load: %v", err)
	}
	if err := cfg.ValidateForRun(); err != nil {
		t.Fatalf("example config invalid: %v", err)
	}
	// Every leaf key appears in the example, so users can find every setting.
	text := string(data)
	for _, s := range Settings() {
		parts := strings.Split(s.Path, ".")
		leaf := parts[len(parts)-1] + ":"
		if !strings.Contains(text, leaf) {
			t.Errorf("setting %s (%s) is missing from configs/apigw-connector.yaml", s.Path, s.Env)
		}
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	t.Parallel()
	getenv, environ := env("APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS", "s3cr3t-one,s3cr3t-two",
		"APIGW_CONNECTOR_NODE_EXTRA_HEADERS", "X-Token=s3cr3t-three", "APIGW_CONNECTOR_NODE_URL", "https://user:s3cr3t-four@node:1")
	cfg, err := Load("", getenv, environ)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cr3t") {
		t.Fatalf("secret printed:\n%s", out)
	}
	if !strings.Contains(string(out), "X-Token") || !strings.Contains(string(out), "reply_timeout: 5s") {
		t.Fatalf("redaction removed too much or durations not readable:\n%s", out)
	}
	if cfg.Firehose.AccessKeys[0] != "s3cr3t-one" {
		t.Fatal("Redacted modified the original")
	}
}
