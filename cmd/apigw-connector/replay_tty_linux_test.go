package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// openPTY returns a pseudo-terminal's two ends, and fails where there is none: Linux CI has them, and a skipped test proves nothing.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal (/dev/ptmx): %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		t.Fatalf("pty number: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, s
}

// ptyOutput runs replay with stderr (and stdin) on a terminal, typed on it
// first, and returns what the terminal showed.
func ptyOutput(t *testing.T, typed string, args ...string) (code int, stdout, screen string) {
	t.Helper()
	master, slave := openPTY(t)
	if _, err := master.WriteString(typed); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil { // EIO once the terminal's other end is closed
				return
			}
		}
	}()
	var out bytes.Buffer
	ran := make(chan int, 1)
	go func() { ran <- run(append([]string{"replay"}, args...), slave, &out, slave) }()
	select {
	case code = <-ran:
	case <-time.After(time.Minute):
		t.Fatal("replay on a terminal did not end within a minute")
	}
	slave.Close()
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output not read to its end")
	}
	mu.Lock()
	defer mu.Unlock()
	return code, out.String(), buf.String()
}

// On a terminal, replay draws one progress line in place: sent, rate and,
// once the input is read, the total and an ETA; the summary follows on a
// clean line. stdin on the terminal gets the hint (a file argument is read).
func TestReplayProgressOnATerminal(t *testing.T) {
	t.Parallel()
	_, url := startDevnode(t, devnode.DefaultOptions(), nil)
	input, ids := timedLines(t, 9, 60, time.Second)
	code, out, screen := ptyOutput(t, "", "--config", writeConfig(t, url, ""), "--log-format", "text", "--rate", "40", input)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%q", code, out, screen)
	}
	for _, want := range []string{"\rreplay: ", " sent · ", " calls/s", fmt.Sprintf(" of %d sent", len(ids)), "ETA ", "\x1b[K"} {
		if !strings.Contains(screen, want) {
			t.Errorf("terminal lacks %q:\n%q", want, screen)
		}
	}
	if !strings.HasSuffix(strings.TrimRight(screen, "\r\n"), "\r\x1b[K") && strings.Contains(screen[strings.LastIndex(screen, "\r"):], "sent") {
		t.Errorf("the progress line is left on the screen at the end:\n%q", screen)
	}
	if !strings.Contains(out, "replay summary") {
		t.Fatalf("no summary:\n%s", out)
	}
}

// With the node down, the line says so: calls waiting, the node's state and
// the retries; --max-wait bounds the wait.
func TestReplayProgressShowsTheNodeDown(t *testing.T) {
	t.Parallel()
	input, _ := timedLines(t, 10, 30, time.Second)
	code, _, screen := ptyOutput(t, "", "--config", writeConfig(t, deadNodeURL(t), ""), "--log-format", "text", "--max-wait", "7s", "--grace", "1s", input)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%q", code, screen)
	}
	for _, want := range []string{"node down", "30 calls waiting", "retries", "no progress for", "replay gave up"} {
		if !strings.Contains(screen, want) {
			t.Errorf("terminal lacks %q:\n%q", want, screen[max(0, len(screen)-2000):])
		}
	}
}

// Off a terminal there is no progress line: only the logs and the summary.
func TestReplayNoProgressOffATerminal(t *testing.T) {
	t.Parallel()
	_, url := startDevnode(t, devnode.DefaultOptions(), nil)
	input, _ := timedLines(t, 11, 40, time.Second)
	code, out, errs := runCmd(t, "replay", "--config", writeConfig(t, url, ""), "--rate", "80", input)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(errs, "\r") || strings.Contains(errs, "calls/s") {
		t.Fatalf("progress noise off a terminal:\n%q", errs)
	}
}

// stdin on a terminal gets the hint (a real terminal, unlike /dev/null),
// and one Ctrl-D ends the input: a terminal's end of input is not sticky,
// so a reader that reads again after it would wait for a second one.
func TestReplayHintsWhenStdinIsATerminal(t *testing.T) {
	t.Parallel()
	_, url := startDevnode(t, devnode.DefaultOptions(), nil)
	_, _, screen := ptyOutput(t, "\x04", "--config", writeConfig(t, url, ""), "--log-format", "text") // Ctrl-D: end of input
	if !strings.Contains(screen, "reading access-log lines from the terminal (end with Ctrl-D") {
		t.Fatalf("no hint on a terminal:\n%q", screen)
	}
}

// A paced replay of a file larger than what replay reads ahead: the total
// and the ETA are estimated from the events counted ahead, marked "~",
// until the input is read to its end.
func TestReplayProgressEstimatesTheTotalOfALargeFile(t *testing.T) {
	t.Parallel()
	_, url := startDevnode(t, devnode.DefaultOptions(), nil)
	input, ids := timedLines(t, 12, 1500, time.Second)
	cfg := writeConfig(t, url, "pipeline:\n  max_buffered_calls: 8\n")
	code, out, screen := ptyOutput(t, "", "--config", cfg, "--log-format", "text", "--rate", "500", input)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%q", code, out, screen)
	}
	for _, want := range []string{fmt.Sprintf(" of ~%d sent", len(ids)), "ETA ~"} {
		if !strings.Contains(screen, want) {
			t.Errorf("terminal lacks %q:\n%q", want, screen[:min(len(screen), 3000)])
		}
	}
}
