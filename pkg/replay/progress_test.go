package replay

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		s       Sample
		want    []string
		notWant []string
	}{
		{"total unknown: no ETA", Sample{Stats: Stats{Sent: 1200}, Total: -1, Read: 5000, Rate: 99.6, NodeUp: true},
			[]string{"replay: 1200 sent", "100 calls/s", "5000 read, ETA when the input is read"}, []string{"ETA 0", " of "}},
		{"rated: ETA from the rate", Sample{Stats: Stats{Sent: 1000}, Total: 4000, Rate: 80, Target: 100, NodeUp: true},
			[]string{"1000 of 4000 sent", "80 calls/s", "ETA 30s"}, nil},
		{"unpaced: ETA from the recent rate", Sample{Stats: Stats{Sent: 0}, Total: 36000, Rate: 100, NodeUp: true},
			[]string{"0 of 36000 sent", "ETA 6m0s"}, nil},
		{"rejections shown", Sample{Stats: Stats{Sent: 10, Rejected: 2}, Total: 10, Rate: 3.25, NodeUp: true},
			[]string{"10 of 10 sent (2 rejected)", "3.2 calls/s"}, []string{"ETA"}},
		{"node down", Sample{Stats: Stats{Sent: 1200, Sending: 16, Stalled: 14 * time.Second}, Total: -1, Buffered: 64, Retries: 12},
			[]string{"1200 sent", "node down", "80 calls waiting", "12 retries", "no progress for 14s"}, []string{"calls/s", "ETA"}},
		{"estimated total", Sample{Stats: Stats{Sent: 1000}, Total: -1, Expected: 7000, Read: 5000, Rate: 100, Target: 100, NodeUp: true},
			[]string{"1000 of ~7000 sent", "ETA ~1m0s"}, []string{"ETA when"}},
		{"no rate yet", Sample{Stats: Stats{Sent: 25}, Total: 300, Target: 100, NodeUp: true},
			[]string{"25 of 300 sent · ETA 3s"}, []string{"calls/s"}},
		{"ETA rounded up", Sample{Stats: Stats{Sent: 275}, Total: 300, Rate: 100, NodeUp: true},
			[]string{"ETA 1s"}, nil},
		{"up but not answering", Sample{Stats: Stats{Sending: 4, Stalled: 9 * time.Second}, Total: -1, NodeUp: true},
			[]string{"node not answering", "4 calls waiting"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Line(tc.s)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("line %q lacks %q", got, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("line %q has %q", got, w)
				}
			}
			if strings.ContainsAny(got, "\n\r") {
				t.Errorf("line %q is not one line", got)
			}
		})
	}
}

func TestMeterRateOverItsWindow(t *testing.T) {
	t.Parallel()
	var m Meter
	m.Window = 5 * time.Second
	t0 := time.Unix(1000, 0)
	var rate float64
	for i := range 21 { // 100/s for 10 s, then 10/s
		rate = m.Add(t0.Add(time.Duration(i)*500*time.Millisecond), int64(i*50))
	}
	if math.Abs(rate-100) > 0.01 {
		t.Fatalf("rate %v, want 100", rate)
	}
	for i := range 12 {
		rate = m.Add(t0.Add(10*time.Second+time.Duration(i+1)*500*time.Millisecond), 1000+int64(i+1)*5)
	}
	if math.Abs(rate-10) > 1 {
		t.Fatalf("rate %v after slowing down, want about 10", rate)
	}
	if len(m.samples) > 13 {
		t.Fatalf("meter keeps %d samples: it should forget what is out of its window", len(m.samples))
	}
}

func TestTerminalRewritesOneLine(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	term := NewTerminal(&b)
	term.Clear() // nothing shown: writes nothing
	term.Show("a")
	term.Show("b")
	term.Clear()
	if got, want := b.String(), "\ra\x1b[K\rb\x1b[K\r\x1b[K"; got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
}
