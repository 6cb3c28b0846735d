package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// sysPair is a sysConn and the server end of its loopback TCP connection.
func sysPair(t *testing.T) (*sysConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := newSysConn(nc).(*sysConn)
	if !ok {
		t.Fatalf("newSysConn(%T) did not wrap it", nc)
	}
	srv, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { sc.Close(); srv.Close() })
	return sc, srv
}

// Payloads larger than the socket buffers make writes and reads meet EAGAIN
// and wait in the netpoller: nothing may be lost, duplicated or reordered.
func TestSysConnCarriesLargePayloadsBothWays(t *testing.T) {
	t.Parallel()
	sc, srv := sysPair(t)
	out := make([]byte, 8<<20)
	if _, err := rand.Read(out); err != nil {
		t.Fatal(err)
	}
	// The server echoes what it reads, slowly enough that both buffers fill.
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := srv.Read(buf)
			if n > 0 {
				if _, werr := srv.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	werr := make(chan error, 1)
	go func() {
		n, err := sc.Write(out)
		if err == nil && n != len(out) {
			err = io.ErrShortWrite
		}
		werr <- err
	}()
	in := make([]byte, len(out))
	_ = sc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(sc, in); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(in, out) {
		t.Fatal("the echo differs from what was written")
	}
}

func TestSysConnReadDeadlineIsATimeout(t *testing.T) {
	t.Parallel()
	sc, _ := sysPair(t)
	_ = sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := sc.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if r := errorReason(err); r != "timeout" {
		t.Fatalf("errorReason = %q, want timeout", r)
	}
}

func TestSysConnSeesThePeersCloseAndReset(t *testing.T) {
	t.Parallel()
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		sc, srv := sysPair(t)
		if _, err := srv.Write([]byte("last")); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(sc)
		if err != nil || string(got) != "last" {
			t.Fatalf("read %q, %v; want the last bytes, then EOF", got, err)
		}
		if n, err := sc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("read after EOF: %d, %v", n, err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		sc, srv := sysPair(t)
		_ = srv.(*net.TCPConn).SetLinger(0) // close sends RST
		srv.Close()
		_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := sc.Read(make([]byte, 1))
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("read of a reset connection: %v (%T), want a *net.OpError for read", err, err)
		}
		if r := errorReason(err); r != "connection_reset" {
			t.Fatalf("errorReason = %q, want connection_reset", r)
		}
		// Writing on until the kernel reports the reset (EPIPE or ECONNRESET).
		var werr error
		for i := 0; i < 100 && werr == nil; i++ {
			_, werr = sc.Write([]byte("x"))
		}
		if r := errorReason(werr); r != "connection_reset" {
			t.Fatalf("write to a reset connection: %v, reason %q, want connection_reset", werr, r)
		}
	})
}

func TestSysConnCloseEndsABlockedRead(t *testing.T) {
	t.Parallel()
	sc, _ := sysPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := sc.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the read wait in the netpoller
	sc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the blocked read")
	}
}

func TestNewSysConnLeavesOtherConnsAlone(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := newSysConn(a); got != a {
		t.Fatalf("newSysConn(net.Pipe) = %T, want the pipe unchanged", got)
	}
}

// A read or a write allocates nothing: a busy connector makes one of each for
// every few messages, and a closure per system call used to cost one each.
func TestSysConnReadAndWriteDoNotAllocate(t *testing.T) {
	sc, srv := sysPair(t)
	msg := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	in := make([]byte, len(msg))
	back := make([]byte, len(msg))
	roundTrip := func() {
		if _, err := sc.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(srv, in); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Write(in); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sc, back); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip() // the first read parks in the netpoller: its descriptor is set up once
	if n := testing.AllocsPerRun(200, roundTrip); n != 0 {
		t.Errorf("%.1f allocations per write and read, want 0", n)
	}
	if !bytes.Equal(back, msg) {
		t.Errorf("read back %q, want %q", back, msg)
	}
}
