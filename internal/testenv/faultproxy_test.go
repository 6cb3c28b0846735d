package testenv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestFaultProxy(t *testing.T) {
	t.Parallel()
	var upstream atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream.Add(1)
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(append([]byte("echo:"), b...))
	}))
	t.Cleanup(up.Close)
	p := StartFaultProxy(t, up.URL)
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
		t.Fatalf("proxy URL %s, want 127.0.0.1", p.URL)
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 2 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	call := func(timeout time.Duration) (int, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/", strings.NewReader("x"))
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	t.Run("forward", func(t *testing.T) {
		if code, body, err := call(2 * time.Second); err != nil || code != 200 || body != "echo:x" {
			t.Fatalf("got %d %q %v, want 200 echo:x", code, body, err)
		}
	})

	t.Run("latency", func(t *testing.T) {
		p.Set(Faults{Latency: 150 * time.Millisecond})
		defer p.Clear()
		start := time.Now()
		if _, _, err := call(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("answered in %s, want at least the 150ms latency", d)
		}
	})

	t.Run("throttle a fraction", func(t *testing.T) {
		p.Set(Faults{ThrottleFraction: 0.5, Throttle: KinesisThrottle})
		defer p.Clear()
		before := upstream.Load()
		throttled := 0
		for range 10 {
			code, body, err := call(2 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code == 400 {
				throttled++
				if !strings.Contains(body, `"__type":"ProvisionedThroughputExceededException"`) {
					t.Fatalf("throttle body %q", body)
				}
			}
		}
		if throttled != 5 || upstream.Load()-before != 5 {
			t.Fatalf("%d of 10 throttled, %d forwarded; want 5 and 5", throttled, upstream.Load()-before)
		}
	})

	t.Run("reset", func(t *testing.T) {
		p.Set(Faults{Reset: 1})
		_, _, err := call(2 * time.Second)
		p.Clear()
		if err == nil {
			t.Fatal("request answered through a reset")
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("reset seen by the client as %v, want a connection reset", err)
		}
		if code, _, err := call(2 * time.Second); err != nil || code != 200 {
			t.Fatalf("after the reset fault: %d %v", code, err)
		}
	})

	t.Run("hang then recover", func(t *testing.T) {
		p.Set(Faults{Hang: 1})
		start := time.Now()
		_, _, err := call(300 * time.Millisecond)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("hung request: %v, want the client's deadline", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("hung request failed after %s, before the client's deadline", d)
		}
		p.Clear()
		if code, _, err := call(2 * time.Second); err != nil || code != 200 {
			t.Fatalf("after the hang: %d %v", code, err)
		}
	})

	s := p.Stats()
	if s.Hung != 1 || s.Reset != 1 || s.Throttled != 5 || s.Requests != s.Forwarded+s.Hung+s.Reset+s.Throttled {
		t.Errorf("stats %+v", s)
	}
}

func TestSpread(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, 0.1, 0.25, 0.5, 0.9, 1} {
		var s spread
		n := 0
		for range 100 {
			if s.next(f) {
				n++
			}
		}
		if want := int(f * 100); n != want {
			t.Errorf("fraction %v: %d of 100 picked, want %d", f, n, want)
		}
	}
}
