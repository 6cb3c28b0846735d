//go:build linux

package emulator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"
)

// A child that holds no socket, standing for an emulator that lost the bind.
func startSleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func TestListensOnTellsWhoseListenerItIs(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	other := startSleeper(t)
	for _, c := range []struct {
		name string
		pid  int
		port int
		want bool
	}{
		{"the listener's own process", os.Getpid(), port, true},
		{"another process", other, port, false},
	} {
		got, err := listensOn(c.pid, c.port)
		if err != nil || got != c.want {
			t.Errorf("%s: listensOn = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	ln.Close()
	if got, err := listensOn(os.Getpid(), port); err != nil || got {
		t.Errorf("a closed listener: listensOn = %v, %v; want false", got, err)
	}
}

// The race this guards: two emulators given one free port; the loser exits,
// but the winner answers on the port, and the loser's caller would take the
// winner for its own (and lose it when the winner's test ends).
func TestWaitHTTPRefusesAnAnswerFromAnotherProcess(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	never := make(chan struct{})
	if err := WaitHTTP(ctx, srv.URL, startSleeper(t), never, 5*time.Second); !errors.Is(err, ErrPortTaken) {
		t.Errorf("another process's answer: %v, want ErrPortTaken", err)
	}
	if err := WaitHTTP(ctx, srv.URL, os.Getpid(), never, 5*time.Second); err != nil {
		t.Errorf("the listener's own answer: %v", err)
	}
}
