//go:build !race

// The race detector multiplies memory and time: this test measures both, so
// it runs only in a normal build (go test without -race).

package main

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// writeExport writes a CloudWatch Logs export of n events as one gzip stream
// of concatenated subscription documents (the shape of exports and
// Firehose-to-S3 objects), without holding it in memory.
func writeExport(t *testing.T, path string, n, perDoc int) (compressed, decompressed int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	g := traffic.New(traffic.Options{Seed: 300, APIs: 4, EndpointsPerAPI: 8})
	for done := 0; done < n; {
		k := min(perDoc, n-done)
		evs, _ := g.Events(nil, k)
		doc := traffic.Envelope("API-Gateway-Execution-Logs_abc123/prod", "0123456789abcdef", evs)
		if _, err := zw.Write(append(doc, '\n')); err != nil {
			t.Fatal(err)
		}
		decompressed += int64(len(doc) + 1)
		done += k
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	return st.Size(), decompressed
}

// TestReplayOfALargeExportStreams replays a 300,000-event export with the
// real binary: every call reaches the node and the process's peak RSS stays
// under 64 MiB, far below the export's decompressed size.
func TestReplayOfALargeExportStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 300,000 calls")
	}
	t.Parallel()
	const events = 300_000
	dir := t.TempDir()
	// APIGW_REPLAY_BIN measures another build (e.g. an older one) instead.
	bin := os.Getenv("APIGW_REPLAY_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "apigw-connector")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	export := filepath.Join(dir, "export.json.gz")
	start := time.Now()
	comp, decomp := writeExport(t, export, events, 1000)
	t.Logf("export: %d events, %.1f MB gzip, %.1f MB decompressed (written in %s)", events, float64(comp)/1e6, float64(decomp)/1e6, time.Since(start).Round(time.Millisecond))
	if decomp < 64<<20 {
		t.Fatalf("export decompresses to %d bytes: not larger than the 64 MiB cap, the test would prove nothing", decomp)
	}

	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)          // remembers up to 1<<20 calls: duplicates are seen
	cfg := writeConfig(t, url, os.Getenv("APIGW_REPLAY_EXTRA_CONFIG")) // e.g. a raised decode cap for an older build
	if err := os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "concurrency: 16", "concurrency: 64", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "replay", "--config", cfg, "--log-format", "text", export)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("replay: %v\n%s\n%s", err, out.String(), tail(errb.String(), 2000))
		}
	case <-time.After(150 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("replay did not finish in 150 s\n%s", tail(errb.String(), 2000))
	}
	elapsed := time.Since(start)
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	t.Logf("replay: %d calls in %s (%.0f calls/s), peak RSS %.1f MiB", events, elapsed.Round(time.Millisecond), events/elapsed.Seconds(), float64(rss)/(1<<20))
	if st := dn.Stats(); st.Completed != events || st.Duplicates != 0 {
		t.Fatalf("node completed %d calls (%d duplicates), want %d\n%s", st.Completed, st.Duplicates, events, out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("delivered:       %d", events)) || !strings.Contains(out.String(), "decode errors:   0") {
		t.Fatalf("summary:\n%s", out.String())
	}
	if rss >= 64<<20 {
		t.Fatalf("peak RSS %.1f MiB, want < 64 MiB for a %.0f MB export", float64(rss)/(1<<20), float64(decomp)/1e6)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
