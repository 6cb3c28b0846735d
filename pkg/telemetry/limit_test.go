package telemetry

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// rawScrape writes one keep-alive GET /healthz on c and reads its reply
// within d; it reports whether a 200 came back.
func rawScrape(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Idle keep-alive connections used to be kept forever and unbounded in
// number: a few hundred of them exhausted the process's descriptors. Now
// the listener holds at most max_connections, closes idle ones after
// idle_timeout, and a scrape queued behind them gets through then.
func TestMetricsListenerCapsConnectionsAndClosesIdleOnes(t *testing.T) {
	t.Parallel()
	const maxConns, idle = 4, 700 * time.Millisecond
	s := NewServerConfig(MetricsConfig{Addr: "127.0.0.1:0", MaxConnections: maxConns, IdleTimeout: idle}, NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	addr := s.Addr().String()
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Fill every slot with a connection that scraped once and stays idle.
	held := make([]net.Conn, maxConns)
	for i := range held {
		held[i] = dial()
		if !rawScrape(t, held[i], 2*time.Second) {
			t.Fatalf("connection %d: first scrape failed", i)
		}
	}
	start := time.Now()
	// Over the cap: connected (the kernel's backlog) but not served yet.
	extra := dial()
	if rawScrape(t, extra, idle/3) {
		t.Fatalf("a connection beyond max_connections=%d was served at once: the cap does not hold", maxConns)
	}
	// The idle ones are closed by the server after idle_timeout...
	for i, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(idle + 2*time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("idle connection %d not closed by the server after %s: %v", i, idle, err)
		}
	}
	if d := time.Since(start); d < idle/2 {
		t.Fatalf("idle connections closed after %s, before idle_timeout %s", d, idle)
	}
	// ...which lets a fresh scrape through promptly.
	if !rawScrape(t, dial(), 2*time.Second) {
		t.Fatal("a scrape after the idle connections were closed failed")
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func TestLimitListenerCloseUnblocksAccept(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(inner, 1)
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept blocked on a full listener did not return after Close")
	}
}
