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

// load is Load of a file holding yaml (none when empty) under the faked
// environment kv.
func load(t *testing.T, yaml string, kv ...string) (Config, error) {
	t.Helper()
	path := ""
	if yaml != "" {
		path = writeFile(t, yaml)
	}
	getenv, environ := env(kv...)
	return Load(path, getenv, environ)
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
			cfg, err := load(t, tt.file, tt.kv...)
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
			cfg, err := load(t, tt.file, tt.kv...)
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

func TestYAMLMistakesNameTheSettingAndItsVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string
	}{
		{"node:\n  ulr: http://x\n", []string{"line 2", "node.ulr names no setting", "check-config --list", "url"}},
		{"foo: 1\n", []string{"line 1", "foo names no setting"}},
		{"node:\n  reply_timeout: 5\n", []string{"line 2", "node.reply_timeout", "APIGW_CONNECTOR_NODE_REPLY_TIMEOUT", "duration"}},
		{"node:\n  concurrency: many\n", []string{"node.concurrency", "APIGW_CONNECTOR_NODE_CONCURRENCY", "integer"}},
		{"node:\n  retry:\n    multiplier: x\n", []string{"line 3", "node.retry.multiplier", "APIGW_CONNECTOR_NODE_RETRY_MULTIPLIER"}},
		{"kinesis:\n  initial_timestamp: yesterday\n", []string{"kinesis.initial_timestamp", "APIGW_CONNECTOR_KINESIS_INITIAL_TIMESTAMP", "RFC 3339"}},
		{"kinesis:\n  create_lease_table: maybe\n", []string{"kinesis.create_lease_table", "APIGW_CONNECTOR_KINESIS_CREATE_LEASE_TABLE", "true or false"}},
		{"node:\n  extra_headers: [a]\n", []string{"node.extra_headers", "APIGW_CONNECTOR_NODE_EXTRA_HEADERS"}},
		{"access_log:\n  fields:\n    method: httpMethod\n", []string{"access_log.fields.method", "APIGW_CONNECTOR_ACCESS_LOG_FIELDS_METHOD", "list"}},
		{"node: 5\n", []string{"node must be a mapping"}},
		{"- a\n", []string{"the document must be a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			getenv, environ := env()
			_, err := Load(writeFile(t, tt.file), getenv, environ)
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
	// Valid YAML still loads through the strict decoder, anchors included.
	getenv, environ := env()
	cfg, err := Load(writeFile(t, "node:\n  url: http://n:1\n  retry: &r\n    max_backoff: 20s\nkinesis:\n  create_lease_table: false\n"), getenv, environ)
	if err != nil || cfg.Node.Retry.MaxBackoff != 20*time.Second || cfg.Kinesis.CreateLeaseTable {
		t.Fatalf("valid file: %v %+v", err, cfg.Node.Retry)
	}
}

func TestNodeURLCredentialsAreNeverEchoed(t *testing.T) {
	t.Parallel()
	for _, kv := range [][]string{
		{"APIGW_CONNECTOR_NODE_URL", "https://user:s3cr3t@node:1"},
		{"X_NODE_URL", "user:s3cr3t@node:1"},
	} {
		getenv, environ := env(kv...)
		cfg, err := Load("", getenv, environ)
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.Validate()
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "node.url") {
			t.Fatalf("%v: error %v: want a node.url error without the password", kv, err)
		}
		if kv[0] == "X_NODE_URL" && !strings.Contains(err.Error(), "X_NODE_URL") {
			t.Fatalf("error %v does not say node.url came from X_NODE_URL", err)
		}
	}
	if got := redactURL("https://u:p@node:1/x"); got != "https://<redacted>@node:1/x" {
		t.Fatalf("redactURL: %q", got)
	}
}

func TestOffSwitchesOffFromTheEnvironment(t *testing.T) {
	t.Parallel()
	getenv, environ := env("APIGW_CONNECTOR_NODE_URL", "http://n:1", "APIGW_CONNECTOR_METRICS_ADDR", "off", "APIGW_CONNECTOR_NODE_HEALTH_PATH", "OFF")
	cfg, err := Load("", getenv, environ)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.Addr != "" || cfg.Node.HealthPath != "" {
		t.Fatalf("off not applied: metrics.addr %q node.health_path %q", cfg.Metrics.Addr, cfg.Node.HealthPath)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMissingFilesFailAtStartWithTheirSetting(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.pem")
	tests := []struct {
		kv   []string
		want string
	}{
		{[]string{"APIGW_CONNECTOR_NODE_URL", "https://n:1", "APIGW_CONNECTOR_KINESIS_STREAM", "s", "APIGW_CONNECTOR_NODE_TLS_CA_FILE", missing}, "APIGW_CONNECTOR_NODE_TLS_CA_FILE"},
		{[]string{"APIGW_CONNECTOR_NODE_URL", "https://n:1", "APIGW_CONNECTOR_SOURCE_TYPE", "firehose", "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEY_FILE", missing}, "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEY_FILE"},
		{[]string{"APIGW_CONNECTOR_NODE_URL", "https://n:1", "APIGW_CONNECTOR_SOURCE_TYPE", "firehose", "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS", "k",
			"APIGW_CONNECTOR_FIREHOSE_TLS_CERT_FILE", missing, "APIGW_CONNECTOR_FIREHOSE_TLS_KEY_FILE", missing}, "APIGW_CONNECTOR_FIREHOSE_TLS_CERT_FILE"},
	}
	for _, tt := range tests {
		getenv, environ := env(tt.kv...)
		cfg, err := Load("", getenv, environ)
		if err == nil {
			err = cfg.ValidateForRun()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("error %v, want one naming %s", err, tt.want)
		}
	}
}

func TestSettingsCarryTheirDefaults(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"node.reply_timeout":         "5s",
		"node.concurrency":           "64",
		"kinesis.create_lease_table": "true",
		"access_log.fields.method":   "httpMethod,method,http_method",
		"metrics.addr":               ":9102",
		"node.url":                   "",
	}
	for _, s := range Settings() {
		if w, ok := want[s.Path]; ok && s.Default != w {
			t.Errorf("%s default %q, want %q", s.Path, s.Default, w)
		}
	}
}
