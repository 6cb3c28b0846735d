package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// Usage mistakes exit 2 and say what is wrong; -h exits 0.
func TestUsageErrorsAreReportedAndHelpIsNotAnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		args []string
		code int
		want string // on stderr
	}{
		{[]string{"run", "extra"}, 2, "takes no arguments"},
		{[]string{"check-config", "extra.yaml"}, 2, "pass the file with --config"},
		{[]string{"healthcheck", "extra"}, 2, "takes no arguments"},
		{[]string{"run", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"devnode", "extra"}, 2, "takes no arguments"},
		{[]string{"devnode", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"devnode", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"replay", filepath.Join(dir, "missing.log")}, 2, "no such file"},
		{[]string{"replay", dir}, 2, "is a directory"},
		{[]string{"run", "-h"}, 0, "usage: apigw-connector run"},
		{[]string{"replay", "--help"}, 0, "usage: apigw-connector replay"},
		{[]string{"check-config", "-h"}, 0, "--list"},
		{[]string{"healthcheck", "-h"}, 0, "/healthz"},
		{[]string{"devnode", "-h"}, 0, "usage: apigw-connector devnode"},
		{[]string{"generate", "-h"}, 0, "usage: apigw-connector generate"},
		{[]string{"version", "extra"}, 2, "takes no arguments"},
		{[]string{"version", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"version", "-h"}, 0, "usage: apigw-connector version"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errs := runCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, want %d; stderr does not say %q:\n%s%s", code, tt.code, tt.want, out, errs)
			}
			if strings.Contains(out, "replay summary") || strings.HasPrefix(out, "apigw-connector ") {
				t.Fatalf("a usage mistake replayed something:\n%s", out)
			}
		})
	}
}

// A missing third file must not leave the first two replayed: nothing is sent.
func TestReplayChecksEveryInputBeforeSending(t *testing.T) {
	t.Parallel()
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	_, lines, _ := genInputs(t, 7, 20)
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), lines, filepath.Join(t.TempDir(), "typo.log"))
	if code != 2 || !strings.Contains(errs, "typo.log") {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	if n := dn.Stats().Requests; n != 0 {
		t.Fatalf("%d messages sent before the missing input was noticed", n)
	}
}

// An input of no shape replay reads (here CLF access-log lines) fails with
// one message naming what it looks like and what replay reads, not one
// "not_json" per line.
func TestReplayOfNoAPICallFails(t *testing.T) {
	t.Parallel()
	_, url := startDevnode(t, devnode.DefaultOptions(), nil)
	clf := filepath.Join(t.TempDir(), "clf.log")
	if err := os.WriteFile(clf, []byte(strings.Repeat("127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /a HTTP/1.0\" 200 2326\n", 20)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), clf)
	if code != 1 || strings.Contains(out, "not_json") || !strings.Contains(errs, "looks like CLF") || !strings.Contains(errs, "replay reads") ||
		strings.Count(errs, "CLF") != 1 {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	empty := filepath.Join(t.TempDir(), "empty.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), empty); code != 0 {
		t.Fatalf("empty input: exit %d:\n%s%s", code, out, errs)
	}
}

func TestCheckConfigListShowsDefaultsAndTheOtherVariables(t *testing.T) {
	t.Parallel()
	code, out, errs := runCmd(t, "check-config", "--list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"DEFAULT", "APIGW_CONNECTOR_NODE_REPLY_TIMEOUT", "5s", "X_NODE_URL", "APIGW_CONNECTOR_CONFIG", `"off"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("--list lacks %q:\n%s", want, out)
		}
	}
}
