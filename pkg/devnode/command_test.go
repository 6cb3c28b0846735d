package devnode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

func TestRunCommandServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var logs testkit.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- RunCommand(ctx, []string{"--listen", "127.0.0.1:0", "--fail-for", "1h", "--fail-status", "502", "--log-format", "json"}, outW, &logs)
		outW.Close()
	}()

	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("read address line: %v (logs: %s)", err, logs.String())
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "devnode listening on ")
	if !ok {
		t.Fatalf("unexpected first line %q", line)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(base + DefaultHealthPath)
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("health during --fail-for: %d, want 502", res.StatusCode)
	}
	tr.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunCommand: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunCommand did not return after cancel")
	}
	if !strings.Contains(logs.String(), `"msg":"devnode stopped"`) {
		t.Fatalf("logs lack the stop record (want JSON):\n%s", logs.String())
	}
}

func TestRunCommandRejectsBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--log-format", "xml"}, "--log-format must be json or text"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--fail-status", "42"}, "devnode.fail_status"},
		{[]string{"--pending-ttl", "0s"}, "--pending-ttl must be positive"},
		{[]string{"extra"}, "takes no arguments"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"--listen", "256.0.0.1:bad"}, "start devnode"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := RunCommand(context.Background(), tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			// Command-line mistakes are usage errors (exit 2); a failed start is not.
			if usage := !strings.HasPrefix(tc.wantErr, "start"); errors.Is(err, ErrUsage) != usage {
				t.Fatalf("errors.Is(%v, ErrUsage) = %v, want %v", err, !usage, usage)
			}
		})
	}
	var out, errOut bytes.Buffer
	if err := RunCommand(context.Background(), []string{"-h"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(errOut.String(), "--fail-for") && !strings.Contains(errOut.String(), "-fail-for") {
		t.Fatalf("usage lacks flags:\n%s", errOut.String())
	}
}
