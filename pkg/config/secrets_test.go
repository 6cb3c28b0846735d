package config

import (
	"strings"
	"testing"
)

// marker is the secret fed through every setting that can hold one; the
// YAML decoder quotes a value's first 7 bytes, so the check looks for less.
const (
	marker     = "Zq7XwS3CR3T"
	markerSeen = "Zq7Xw"
)

// No setting that can hold a secret is echoed by loading, validating or
// rendering, whether the value is valid or not, from YAML or environment.
func TestSecretsAreNeverEchoed(t *testing.T) {
	t.Parallel()
	const m = marker
	tests := []struct {
		name string
		yaml string
		env  []string
		bad  bool // must fail to load or validate
	}{
		{name: "url userinfo", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://admin:" + m + "@127.0.0.1:1"}, bad: true},
		{name: "url password with #", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://admin:" + m + "#x@127.0.0.1:1"}, bad: true},
		{name: "url password with /", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://admin:" + m + "/x@127.0.0.1:1"}, bad: true},
		{name: "url password with ?", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://admin:" + m + "?x@127.0.0.1:1"}, bad: true},
		{name: "url password with bad escape", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://admin:" + m + "%zz@127.0.0.1:1"}, bad: true},
		{name: "url parsed as host:port", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://admin:12345/" + m + "@127.0.0.1:1"}, bad: true},
		{name: "url in yaml", yaml: "node:\n  url: \"http://admin:12345/" + m + "@127.0.0.1:1\"\n", bad: true},
		{name: "url as X_NODE_URL", env: []string{"X_NODE_URL", "admin:" + m + "/x@127.0.0.1:1", "X_NODE_SCHEME", "http"}, bad: true},
		{name: "header value valid", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:1", "APIGW_CONNECTOR_NODE_EXTRA_HEADERS", "X-Token=" + m}},
		{name: "header value with control byte", yaml: "node:\n  url: http://127.0.0.1:1\n  extra_headers:\n    X-Token: \"" + m + "\\u0001\"\n", bad: true},
		{name: "header env without =", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:1", "APIGW_CONNECTOR_NODE_EXTRA_HEADERS", "X-Token" + m}, bad: true},
		{name: "headers yaml scalar", yaml: "node:\n  url: http://127.0.0.1:1\n  extra_headers: " + m + "\n", bad: true},
		{name: "access keys yaml scalar", yaml: "node:\n  url: http://127.0.0.1:1\nfirehose:\n  access_keys: " + m + "\n", bad: true},
		// A merge key is left to the YAML decoder, whose message quotes the value's start.
		{name: "access keys scalar through a merge key", yaml: "node:\n  url: http://127.0.0.1:1\nfirehose:\n  <<: {access_keys: " + m + "}\n", bad: true},
		{name: "access keys yaml list", yaml: "node:\n  url: http://127.0.0.1:1\nsource:\n  type: firehose\nfirehose:\n  access_keys: [" + m + "]\n"},
		{name: "access keys env", env: []string{"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:1", "APIGW_CONNECTOR_SOURCE_TYPE", "firehose", "APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS", m + ",other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var msgs []string
			cfg, err := load(t, tt.yaml, tt.env...)
			if err != nil {
				msgs = append(msgs, err.Error())
			} else {
				out, yerr := cfg.YAML()
				if yerr != nil {
					t.Fatal(yerr)
				}
				msgs = append(msgs, string(out), cfg.Redacted().Node.URL)
				if err = cfg.ValidateForRun(); err != nil {
					msgs = append(msgs, err.Error())
				}
			}
			if tt.bad && err == nil {
				t.Fatalf("accepted; want an error")
			}
			if !tt.bad && err != nil && !strings.Contains(err.Error(), "kinesis") {
				t.Fatalf("unexpected error: %v", err)
			}
			for _, msg := range msgs {
				if i := strings.Index(msg, markerSeen); i >= 0 {
					t.Fatalf("the secret is printed:\n...%.300s", msg[max(0, i-150):])
				}
			}
		})
	}
}

func TestRedactURLHidesUserInfoHoweverWritten(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://u:p@node:1/x":         "https://<redacted>@node:1/x",
		"http://admin:12345/pw@host:1": "http://<redacted>@host:1",
		"http://a:p#w@host":            "http://<redacted>@host",
		"http://a:p%zz@host/x?token=1": "http://<redacted>@host/x?<redacted>",
		"admin:pw@host:1":              "<redacted>@host:1",
		"http://10.0.0.5:5050/prefix":  "http://10.0.0.5:5050/prefix",
		"http://10.0.0.5:5050/p#frag":  "http://10.0.0.5:5050/p#<redacted>",
	} {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// A comma inside an item (an extra header's value, an access key) is
// written "\," in the environment; "\\" is a backslash.
func TestEnvironmentCommaEscape(t *testing.T) {
	t.Parallel()
	getenv, environ := env(
		"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:1",
		"APIGW_CONNECTOR_NODE_EXTRA_HEADERS", `X-List=a\,b\,c,X-Other=d,X-Slash=e\\,X-Raw=f\g`,
		"APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS", `k1\,x,k2`,
	)
	cfg, err := Load("", getenv, environ)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"X-List": "a,b,c", "X-Other": "d", "X-Slash": `e\`, "X-Raw": `f\g`}
	for k, v := range want {
		if cfg.Node.ExtraHeaders[k] != v {
			t.Errorf("extra header %s = %q, want %q (all: %q)", k, cfg.Node.ExtraHeaders[k], v, cfg.Node.ExtraHeaders)
		}
	}
	if len(cfg.Node.ExtraHeaders) != len(want) {
		t.Errorf("extra headers %q, want %q", cfg.Node.ExtraHeaders, want)
	}
	if got := strings.Join(cfg.Firehose.AccessKeys, "|"); got != "k1,x|k2" {
		t.Errorf("access keys %q, want k1,x and k2", got)
	}
	// The environment form of a value (the --list defaults) reads back the same.
	for _, s := range []string{"a,b", `c\`, `d\,e`, "plain"} {
		if got := splitEscaped(escapeItem(s)); len(got) != 1 || got[0] != s {
			t.Errorf("escapeItem(%q) reads back as %q", s, got)
		}
	}
}
