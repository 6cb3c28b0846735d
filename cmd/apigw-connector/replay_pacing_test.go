package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv"
	"github.com/wallarm/apigw-connector/pkg/devnode"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

// timedLines writes n access-log lines logged step apart and returns the file
// and the request ids.
func timedLines(t *testing.T, seed int64, n int, step time.Duration) (string, []string) {
	t.Helper()
	g := traffic.New(traffic.Options{Seed: seed, APIs: 2, EndpointsPerAPI: 4})
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	ids := make([]string, 0, n)
	for i := range n {
		c := g.Next()
		c.Time = t0.Add(time.Duration(i) * step)
		b.Write(g.AppendLine(nil, &c))
		b.WriteByte('\n')
		ids = append(ids, c.RequestID)
	}
	p := filepath.Join(t.TempDir(), "export.log")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, ids
}

// arrivalSpan is the time between the first and the last request message at the node.
func arrivalSpan(t *testing.T, dn *devnode.Server) time.Duration {
	t.Helper()
	calls := dn.Calls()
	if len(calls) < 2 {
		t.Fatalf("node completed %d calls", len(calls))
	}
	first, last := calls[0].RequestAt, calls[0].RequestAt
	for _, c := range calls {
		if c.RequestAt.Before(first) {
			first = c.RequestAt
		}
		if c.RequestAt.After(last) {
			last = c.RequestAt
		}
	}
	return last.Sub(first)
}

// Pacing end to end, through the real command and a devnode: the node
// receives the calls spread as asked. The bound is generous (a loaded
// 2-core machine); the exact accuracy is the pacer's unit tests' business.
func TestReplayPacingEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		flag []string
		n    int
		step time.Duration
		want time.Duration // arrival span
	}{
		{"rate", []string{"--rate", "40"}, 81, time.Millisecond, 2 * time.Second},
		// 4 minutes of log at --speed 120: 2 s at the node.
		{"speed", []string{"--speed", "120"}, 81, 3 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
			input, ids := timedLines(t, 21, tc.n, tc.step)
			args := append([]string{"replay", "--config", writeConfig(t, url, ""), "--log-format", "text"}, tc.flag...)
			code, out, errs := runCmd(t, append(args, input)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errs)
			}
			testenv.AssertIDsDeliveredOnce(t, dn, ids)
			span := arrivalSpan(t, dn)
			t.Logf("%s: %d calls arrived over %s, want %s (%+.1f%%)", tc.name, tc.n, span, tc.want, 100*(span.Seconds()/tc.want.Seconds()-1))
			if span < tc.want*9/10 || span > tc.want*2 {
				t.Fatalf("%d calls arrived over %s, want about %s", tc.n, span, tc.want)
			}
			if strings.Contains(errs, "unpaced replay") {
				t.Fatalf("a paced replay warns of a burst:\n%s", errs)
			}
		})
	}
}

func TestReplayFlagMistakes(t *testing.T) {
	t.Parallel()
	input, _ := timedLines(t, 1, 2, time.Second)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "10", "--speed", "60"}, "--rate and --speed are mutually exclusive"},
		{[]string{"--rate", "-3"}, "--rate must be a positive number"},
		{[]string{"--speed", "-1"}, "--speed must be a positive factor"},
		{[]string{"--max-wait", "-1s"}, "--max-wait must be a positive duration"},
		{[]string{"--speed", "fast"}, `invalid value "fast" for flag -speed`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errs := runCmd(t, append(append([]string{"replay"}, tc.args...), input)...)
			if code != 2 || !strings.Contains(errs, tc.want) || out != "" {
				t.Fatalf("exit %d, stderr %q, stdout %q; want exit 2 saying %q and nothing sent", code, errs, out, tc.want)
			}
		})
	}
}

// An unpaced replay of more than ten minutes of log warns once, naming
// --speed and --rate; a short span or a paced replay does not.
func TestReplayWarnsOfABurst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		step  time.Duration
		flags []string
		warn  bool
	}{
		{"an hour unpaced", 30 * time.Second, nil, true},
		{"a minute unpaced", 500 * time.Millisecond, nil, false},
		{"an hour at --rate", 30 * time.Second, []string{"--rate", "2000"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, url := startDevnode(t, devnode.DefaultOptions(), nil)
			input, _ := timedLines(t, 3, 121, tc.step)
			args := append([]string{"replay", "--config", writeConfig(t, url, ""), "--log-format", "text"}, tc.flags...)
			code, out, errs := runCmd(t, append(args, input)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errs)
			}
			n := strings.Count(errs, "unpaced replay of")
			switch {
			case tc.warn && n != 1:
				t.Fatalf("%d burst warnings, want 1:\n%s", n, errs)
			case tc.warn && !(strings.Contains(errs, "--speed") && strings.Contains(errs, "--rate") && strings.Contains(errs, "API Discovery")):
				t.Fatalf("the warning does not say why or name --speed and --rate:\n%s", errs)
			case !tc.warn && n != 0:
				t.Fatalf("unexpected burst warning:\n%s", errs)
			}
		})
	}
}

// deadNodeURL is a loopback URL where nothing listens.
func deadNodeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

var summaryLine = regexp.MustCompile(`(?m)^  (delivered|undelivered|rejected|calls parsed): +(\d+)`)

func summaryCounts(t *testing.T, out string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, sm := range summaryLine.FindAllStringSubmatch(out, -1) {
		m[sm[1]], _ = strconv.Atoi(sm[2])
	}
	if len(m) != 4 {
		t.Fatalf("no summary in:\n%s", out)
	}
	return m
}

// --max-wait: against a node that never answers, replay stops after the
// bound, reports every call undelivered and exits 1 saying why.
func TestReplayMaxWaitGivesUpOnADeadNode(t *testing.T) {
	t.Parallel()
	input, ids := timedLines(t, 5, 50, time.Second)
	start := time.Now()
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, deadNodeURL(t), ""), "--log-format", "text", "--max-wait", "1s", "--grace", "1s", input)
	elapsed := time.Since(start)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "replay gave up: the node accepted no call for 1s (--max-wait)") {
		t.Fatalf("stderr lacks the reason:\n%s", errs)
	}
	if c := summaryCounts(t, out); c["delivered"] != 0 || c["undelivered"] != len(ids) {
		t.Fatalf("summary %v, want all %d undelivered", c, len(ids))
	}
	if elapsed > 20*time.Second {
		t.Fatalf("took %s to give up after --max-wait 1s", elapsed)
	}
}

// A paced replay stopped by SIGTERM settles what is being sent, sends
// nothing more, and its summary is the node's truth: every call counted
// delivered completed at the node once, and delivered + undelivered is
// every call.
func TestReplaySIGTERMSettlesAPacedReplay(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dn, url := startDevnode(t, devnode.DefaultOptions(), nil)
	input, ids := timedLines(t, 8, 400, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, "replay", "--config", writeConfig(t, url, ""), "--log-format", "text", "--rate", "40", input)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for dn.Stats().Completed < 40 {
		if ctx.Err() != nil {
			t.Fatalf("no progress\n%s", errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	stopped := time.Since(signalled)
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1\n%s\n%s", code, err, out.String(), errs.String())
	}
	c := summaryCounts(t, out.String())
	completed := int(dn.Stats().Completed)
	missing, repeated := dn.CheckDelivered(ids)
	switch {
	case c["delivered"] != completed:
		t.Fatalf("summary says %d delivered, the node completed %d", c["delivered"], completed)
	case len(repeated) > 0:
		t.Fatalf("%d calls delivered twice", len(repeated))
	case len(ids)-len(missing) != completed:
		t.Fatalf("%d of the input's calls completed, node counted %d", len(ids)-len(missing), completed)
	case c["delivered"]+c["undelivered"] != len(ids):
		t.Fatalf("delivered %d + undelivered %d != %d calls", c["delivered"], c["undelivered"], len(ids))
	case c["delivered"] >= len(ids)*3/4:
		t.Fatalf("%d of %d delivered: the replay went on after SIGTERM", c["delivered"], len(ids))
	case stopped > 8*time.Second: // well under the 10 s grace: nothing waits at pace
		t.Fatalf("exited %s after SIGTERM", stopped)
	}
	if !strings.Contains(errs.String(), "replay incomplete") {
		t.Fatalf("stderr does not say the replay is incomplete:\n%s", errs.String())
	}
	t.Logf("SIGTERM after %d completed: exited in %s, summary %v", 40, stopped.Round(time.Millisecond), c)
}

// Help tells each command's truth about the metrics listener.
func TestReplayHelpNamesNoDefaultListener(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cmd      string
		has, not string
	}{
		{"replay", "default: no listener", ":9102"},
		{"run", `default ":9102"`, "no listener"},
		{"inventory", "opens no listener", ":9102"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			t.Parallel()
			code, _, errs := runCmd(t, tc.cmd, "-h")
			i := strings.Index(errs, "-metrics-addr")
			if code != 0 || i < 0 {
				t.Fatalf("exit %d, help:\n%s", code, errs)
			}
			help := errs[i:]
			if j := strings.Index(help[1:], "\n  -"); j > 0 {
				help = help[:j+1]
			}
			if !strings.Contains(help, tc.has) || strings.Contains(help, tc.not) {
				t.Fatalf("%s -h: --metrics-addr help %q, want %q and not %q", tc.cmd, help, tc.has, tc.not)
			}
		})
	}
}

// /dev/null is a character device, not a terminal: no "reading from the
// terminal" hint, and no progress line drawn into a redirected stderr.
func TestReplayFromDevNullIsNotATerminal(t *testing.T) {
	t.Parallel()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { null.Close() })
	_, url := startDevnode(t, devnode.DefaultOptions(), nil)
	var out, errs bytes.Buffer
	run([]string{"replay", "--config", writeConfig(t, url, ""), "--log-format", "text"}, null, &out, &errs)
	if strings.Contains(errs.String(), "terminal") || strings.Contains(errs.String(), "\r") {
		t.Fatalf("replay < /dev/null:\n%s", errs.String())
	}
}
