package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wallarm/apigw-connector/pkg/node"
)

const redacted = "<redacted>"

// Redacted returns a copy safe to print or log: secrets replaced.
func (c Config) Redacted() Config {
	out := c
	if len(c.Firehose.AccessKeys) > 0 {
		keys := make([]string, len(c.Firehose.AccessKeys))
		for i := range keys {
			keys[i] = redacted
		}
		out.Firehose.AccessKeys = keys
	}
	// Static headers often carry tokens (application ids, API keys).
	if len(c.Node.ExtraHeaders) > 0 {
		h := make(map[string]string, len(c.Node.ExtraHeaders))
		for k := range c.Node.ExtraHeaders {
			h[k] = redacted
		}
		out.Node.ExtraHeaders = h
	}
	out.Node.URL = redactURL(c.Node.URL)
	return out
}

// redactURL hides the user info (and query) of a URL, whether or not it
// parses: scheme://<redacted>@host/path.
func redactURL(raw string) string { return node.RedactURL(raw) }

// secretPath reports whether a setting can hold a secret, so that no message
// (environment, YAML or validation) echoes its value.
func secretPath(path []string) bool {
	p := strings.Join(path, ".")
	for _, s := range []string{"node.url", "node.extra_headers", "firehose.access_keys"} {
		if p == s || strings.HasPrefix(p, s+".") {
			return true
		}
	}
	return false
}

// YAML renders the configuration, secrets redacted.
func (c Config) YAML() ([]byte, error) {
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return b, nil
}
