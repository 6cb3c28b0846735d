package config

import (
	"strings"
	"testing"
)

// node.profile comes from the file or APIGW_CONNECTOR_NODE_PROFILE (the
// environment wins); an unknown one fails naming the setting and the choices.
func TestNodeProfileSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, env string
		want, wantErr   string
	}{
		{name: "default", want: "raw"},
		{name: "file", file: "node:\n  url: http://127.0.0.1:5050\n  profile: raw\n", want: "raw"},
		{name: "env", env: "raw", want: "raw"},
		{name: "unknown in env", file: "node:\n  url: http://127.0.0.1:5050\n  profile: raw\n", env: "multipart", wantErr: `node.profile must be one of raw`},
		{name: "unknown in file", file: "node:\n  url: http://127.0.0.1:5050\n  profile: msgpack\n", wantErr: `got "msgpack": set node.profile (env APIGW_CONNECTOR_NODE_PROFILE)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := []string{"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:5050"}
			if tt.env != "" {
				kv = append(kv, "APIGW_CONNECTOR_NODE_PROFILE", tt.env)
			}
			cfg, err := load(t, tt.file, kv...)
			if err == nil {
				err = cfg.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Node.Profile != tt.want {
				t.Errorf("node.profile = %q, want %q", cfg.Node.Profile, tt.want)
			}
		})
	}
}
