package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// repeatedPrefix returns the first context of an error message (the words
// before a ": ") that a later context starts with again, e.g. "start
// kinesis source: start kinesis source: ...", or "".
func repeatedPrefix(msg string) string {
	seen := map[string]bool{}
	for _, part := range strings.Split(msg, ": ") {
		f := strings.Fields(part)
		if len(f) < 2 {
			continue
		}
		k := f[0] + " " + f[1]
		if seen[k] {
			return k
		}
		seen[k] = true
	}
	return ""
}

func TestRepeatedPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct{ msg, want string }{
		{"start kinesis source: start kinesis source: create lease table x: timeout", "start kinesis"},
		{"start firehose source: start firehose receiver: listen on :1: bind", "start firehose"},
		{"start kinesis source: start lease coordinator: create lease table x: timeout", ""},
	}
	for _, tt := range tests {
		if got := repeatedPrefix(tt.msg); got != tt.want {
			t.Errorf("repeatedPrefix(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

// A source's start error names the source once, however run reports it.
func TestSourceStartErrorHasNoRepeatedPrefix(t *testing.T) {
	t.Parallel()
	listenErr := &net.OpError{Op: "listen", Net: "tcp", Err: errors.New("bind: address already in use")}
	tests := []struct {
		source string
		err    error
		want   string
	}{
		{"kinesis", fmt.Errorf("start kinesis source: %w", fmt.Errorf("start lease coordinator: %w", errors.New("create lease table t: timeout"))), "start kinesis source: start lease coordinator"},
		{"firehose", fmt.Errorf("start firehose receiver: listen on 127.0.0.1:1: %w", listenErr), "set firehose.listen"},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			t.Parallel()
			msg := sourceStartError(tt.source, tt.err).Error()
			if p := repeatedPrefix(msg); p != "" {
				t.Fatalf("%q repeats %q", msg, p)
			}
			if !strings.Contains(msg, tt.want) || !errors.Is(sourceStartError(tt.source, tt.err), tt.err) {
				t.Fatalf("%q does not say %q or lost its cause", msg, tt.want)
			}
		})
	}
}

// The whole command: a Firehose listener on a busy port fails at start with
// one message naming the setting, no prefix twice.
func TestRunOnABusyFirehosePortSaysSoOnce(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	cfg := writeConfig(t, "http://127.0.0.1:1", fmt.Sprintf("source:\n  type: firehose\nfirehose:\n  listen: %s\n  access_keys: [k]\n", busy.Addr()))
	code, out, errs := runCmd(t, "run", "--config", cfg, "--metrics-addr", "off", "--log-format", "text")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	var line string
	for _, l := range strings.Split(errs, "\n") {
		if strings.HasPrefix(l, "apigw-connector run: ") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "set firehose.listen") {
		t.Fatalf("no start error naming firehose.listen:\n%s", errs)
	}
	if p := repeatedPrefix(line); p != "" {
		t.Fatalf("%q repeats %q", line, p)
	}
}
