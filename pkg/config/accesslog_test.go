package config

import (
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/pipeline"
)

func TestAccessLogHostSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		env  []string
		want pipeline.HostRules
	}{
		{"yaml", "access_log:\n  default_host: api.example.com\n  hosts_by_log_group:\n    /aws/apigateway/shop: shop.example.com\n  region: eu-west-1\n", nil,
			pipeline.HostRules{DefaultHost: "api.example.com", HostsByLogGroup: map[string]string{"/aws/apigateway/shop": "shop.example.com"}, Region: "eu-west-1"}},
		{"env", "", []string{
			"APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST", "api.example.com",
			"APIGW_CONNECTOR_ACCESS_LOG_HOSTS_BY_LOG_GROUP", "/aws/apigateway/shop=shop.example.com, API-Gateway-Execution-Logs_abc/prod=abc.example.com",
			"APIGW_CONNECTOR_ACCESS_LOG_REGION", "us-west-2",
			"AWS_REGION", "eu-central-1"},
			pipeline.HostRules{DefaultHost: "api.example.com", Region: "us-west-2",
				HostsByLogGroup: map[string]string{"/aws/apigateway/shop": "shop.example.com", "API-Gateway-Execution-Logs_abc/prod": "abc.example.com"}}},
		{"region from AWS_REGION", "", []string{"AWS_REGION", "ap-south-1"}, pipeline.HostRules{Region: "ap-south-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tc.yaml, append([]string{"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:5050"}, tc.env...)...)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			got := cfg.Pipeline.Hosts
			if got.DefaultHost != tc.want.DefaultHost || got.Region != tc.want.Region || len(got.HostsByLogGroup) != len(tc.want.HostsByLogGroup) {
				t.Fatalf("hosts %+v, want %+v", got, tc.want)
			}
			for g, h := range tc.want.HostsByLogGroup {
				if got.HostsByLogGroup[g] != h {
					t.Fatalf("hosts %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

func TestAccessLogHostSettingsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  []string
		want []string
	}{
		{[]string{"APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST", "https://api.example.com/"}, []string{"access_log.default_host", "APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST", "api.example.com"}},
		{[]string{"APIGW_CONNECTOR_ACCESS_LOG_HOSTS_BY_LOG_GROUP", "g=a b"}, []string{"access_log.hosts_by_log_group", "group=host,group2=host2"}},
		{[]string{"APIGW_CONNECTOR_ACCESS_LOG_REGION", "Frankfurt"}, []string{"access_log.region", "APIGW_CONNECTOR_ACCESS_LOG_REGION"}},
		{[]string{"APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST", "127.0.0.1:5050"}, []string{"access_log.default_host", "node's own address", "APIGW_CONNECTOR_ACCESS_LOG_DEFAULT_HOST"}},
		{[]string{"APIGW_CONNECTOR_ACCESS_LOG_HOSTS_BY_LOG_GROUP", "g=127.0.0.1"}, []string{"access_log.hosts_by_log_group", "node's own address"}},
	}
	for _, tc := range tests {
		getenv, environ := env(append([]string{"APIGW_CONNECTOR_NODE_URL", "http://127.0.0.1:5050"}, tc.env...)...)
		cfg, err := Load("", getenv, environ)
		if err == nil {
			err = cfg.Validate()
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: err %v, want %q", tc.env, err, w)
			}
		}
	}
}
