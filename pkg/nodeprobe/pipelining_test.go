package nodeprobe

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// oneReplyPerRead answers one HTTP request per read and drops whatever else
// that read held, as a server that does not handle pipelining does. Each
// message of the connector's own client arrives in a read of its own, so
// only pipelined requests go unanswered.
func oneReplyPerRead(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
						if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestPipeliningRefused(t *testing.T) {
	t.Parallel()
	url := oneReplyPerRead(t)
	tests := []struct {
		name     string
		depth    int
		wantOK   bool
		wantStep string
	}{
		{"default depth: found and named", 8, false, "FAIL pipelining    1 of 3 pipelined /wallarm-external-health requests answered"},
		{"depth 1: not checked", 1, true, "ok   pipelining    skipped (node.pipeline_depth is 1: off)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := probeConfig(url)
			cfg.PipelineDepth = tt.depth
			r := Run(context.Background(), cfg, Options{}, nil)
			out := report(t, r)
			if !r.Accepted {
				t.Fatalf("the call itself was not accepted:\n%s", out)
			}
			if r.OK() != tt.wantOK {
				t.Errorf("OK() = %v, want %v:\n%s", r.OK(), tt.wantOK, out)
			}
			if !strings.Contains(out, tt.wantStep) {
				t.Errorf("report lacks %q:\n%s", tt.wantStep, out)
			}
			wantCause := !tt.wantOK
			if got := strings.Contains(out, "set node.pipeline_depth: 1 (APIGW_CONNECTOR_NODE_PIPELINE_DEPTH=1)"); got != wantCause {
				t.Errorf("cause naming node.pipeline_depth present = %v, want %v:\n%s", got, wantCause, out)
			}
		})
	}
}
