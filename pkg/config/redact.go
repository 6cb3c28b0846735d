package config

import (
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
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

// redactURL replaces the user info of a URL, if any: scheme://<redacted>@host/path.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	s := u.String()
	if i := strings.Index(s, "://"); i >= 0 {
		return s[:i+3] + redacted + "@" + s[i+3:]
	}
	return redacted + "@" + s
}

// YAML renders the configuration, secrets redacted.
func (c Config) YAML() ([]byte, error) {
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return b, nil
}
