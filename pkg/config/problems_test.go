package config

import (
	"errors"
	"strings"
	"testing"
)

// Every mistake is reported in one go, each with its setting and fix, and
// typos of YAML keys and of environment variables get the same suggestion.
func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		kv    []string
		onRun bool
		want  []string // each must appear, as its own listed problem
	}{
		{
			name: "yaml typos",
			file: "node:\n  ulr: http://x\n  concurency: 4\nlog:\n  levle: info\n",
			want: []string{"line 2: node.ulr names no setting: did you mean node.url?", "line 3: node.concurency names no setting: did you mean node.concurrency?", "line 5: log.levle names no setting: did you mean log.level?"},
		},
		{
			name: "env typos and bad values",
			kv:   []string{"APIGW_CONNECTOR_NODE_URLL", "x", "APIGW_CONNECTOR_KINSEIS_STREAM", "s", "APIGW_CONNECTOR_NODE_REPLY_TIMEOUT", "5"},
			want: []string{
				"APIGW_CONNECTOR_NODE_URLL names no setting: did you mean APIGW_CONNECTOR_NODE_URL?",
				"APIGW_CONNECTOR_KINSEIS_STREAM names no setting: did you mean APIGW_CONNECTOR_KINESIS_STREAM?",
				"APIGW_CONNECTOR_NODE_REPLY_TIMEOUT (setting node.reply_timeout)",
			},
		},
		{
			name:  "validation of every section",
			kv:    []string{"APIGW_CONNECTOR_NODE_CONCURRENCY", "0", "APIGW_CONNECTOR_LOG_FORMAT", "xml", "APIGW_CONNECTOR_METRICS_ADDR", "bad", "APIGW_CONNECTOR_PIPELINE_MAX_BUFFERED_CALLS", "0", "APIGW_CONNECTOR_DECODE_MAX_DECOMPRESSED_BYTES", "10", "APIGW_CONNECTOR_ACCESS_LOG_REGION", "not a region"},
			onRun: true,
			want: []string{"node.url is required", "node.concurrency must be between 1 and 4096", "log.format \"xml\"", "metrics.addr \"bad\"",
				"pipeline.max_buffered_calls", "decode.max_decompressed_bytes", "access_log.region", "kinesis.stream is required"},
		},
		{
			name:  "firehose section",
			kv:    []string{"APIGW_CONNECTOR_NODE_URL", "http://n:1", "APIGW_CONNECTOR_SOURCE_TYPE", "firehose", "APIGW_CONNECTOR_FIREHOSE_PATH", "nope", "APIGW_CONNECTOR_FIREHOSE_MAX_RECORDS", "0"},
			onRun: true,
			want:  []string{"firehose.path \"nope\"", "firehose.max_records", "firehose.access_keys is empty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tt.file, tt.kv...)
			if err == nil && tt.onRun {
				err = cfg.ValidateForRun()
			}
			var p Problems
			if !errors.As(err, &p) {
				t.Fatalf("error %v is not a list of problems", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q:\n%s", w, msg)
				}
			}
			if n := strings.Count(msg, "\n  - "); n != len(tt.want) {
				t.Errorf("%d problems listed, want %d:\n%s", n, len(tt.want), msg)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	names := []string{"url", "concurrency", "health_path", "headers"}
	tests := []struct{ in, want string }{
		{"ulr", "url"},
		{"concurency", "concurrency"},
		{"healthpath", "health_path"},
		{"header", "headers"},
		{"timeout", ""}, // nothing close: no guess
		{"x", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, names); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
