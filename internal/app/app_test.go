package app

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/config"
)

// The warning names a value for the YAML file and one for the environment;
// each must switch the health path off where it is named.
func TestHealthProbeWarningNamesValuesThatWork(t *testing.T) {
	t.Parallel()
	yamlVal := regexp.MustCompile(`node\.health_path: (\S+) in the YAML`).FindStringSubmatch(HealthProbeFailed)
	envVal := regexp.MustCompile(`APIGW_CONNECTOR_NODE_HEALTH_PATH=(\S+) in the environment`).FindStringSubmatch(HealthProbeFailed)
	if yamlVal == nil || envVal == nil {
		t.Fatalf("warning names no YAML and environment value: %q", HealthProbeFailed)
	}
	tests := []struct {
		name string
		yaml string
		env  map[string]string
	}{
		{"yaml", "node:\n  health_path: " + yamlVal[1] + "\n", nil},
		{"env", "", map[string]string{"APIGW_CONNECTOR_NODE_HEALTH_PATH": envVal[1]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var environ []string
			for k, v := range tt.env {
				environ = append(environ, k+"="+v)
			}
			cfg, err := config.Load(path, func(k string) string { return tt.env[k] }, environ)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Node.HealthPath != "" {
				t.Fatalf("health path %q, want off (TCP check only)", cfg.Node.HealthPath)
			}
		})
	}
}
