package traffic_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func TestDeterministic(t *testing.T) {
	t.Parallel()
	a, b := traffic.New(traffic.DefaultOptions()), traffic.New(traffic.DefaultOptions())
	for range 500 {
		if la, lb := a.Line(), b.Line(); !bytes.Equal(la, lb) {
			t.Fatalf("same seed, different lines:\n%s\n%s", la, lb)
		}
	}
	o := traffic.DefaultOptions()
	o.Seed = 2
	if bytes.Equal(traffic.New(o).Line(), traffic.New(traffic.DefaultOptions()).Line()) {
		t.Fatal("different seeds, same line")
	}
}

func TestTrafficShape(t *testing.T) {
	t.Parallel()
	o := traffic.Options{Seed: 7, APIs: 6, EndpointsPerAPI: 10, ErrorShare: 0.2}
	g := traffic.New(o)
	eps := g.Endpoints()
	if len(eps) != 60 || len(g.APIs()) != 6 {
		t.Fatalf("%d endpoints over %d APIs, want 60 over 6", len(eps), len(g.APIs()))
	}
	inventory := map[string]bool{}
	for _, e := range eps {
		if inventory[e.Key()] {
			t.Fatalf("duplicate endpoint %s", e.Key())
		}
		inventory[e.Key()] = true
	}
	custom, execAPI := 0, 0
	for _, a := range g.APIs() {
		if a.CustomDomain {
			custom++
		} else if strings.HasSuffix(a.Host, ".execute-api."+a.Region+".amazonaws.com") && len(a.ID) == 10 {
			execAPI++
		}
	}
	if custom == 0 || execAPI == 0 {
		t.Fatalf("want both custom domains (%d) and execute-api hosts (%d)", custom, execAPI)
	}

	ids := map[string]bool{}
	seen := map[string]bool{}
	errorsN, v6, uuidPaths := 0, 0, 0
	const n = 5000
	for range n {
		c := g.Next()
		if ids[c.RequestID] {
			t.Fatalf("duplicate request id %s", c.RequestID)
		}
		ids[c.RequestID] = true
		seen[c.Endpoint.Key()] = true
		if c.Status >= 400 {
			errorsN++
			if c.ErrorMessage == "" {
				t.Fatalf("error call without message: %+v", c)
			}
		}
		addr, err := netip.ParseAddr(c.SourceIP)
		if err != nil {
			t.Fatalf("bad source IP %q", c.SourceIP)
		}
		if addr.Is6() {
			v6++
		}
		if strings.Count(c.Path, "-") >= 4 {
			uuidPaths++
		}
		if !traffic.MatchesTemplate(c.Path, c.Endpoint.CalledTemplate()) {
			t.Fatalf("path %q does not fit template %q", c.Path, c.Endpoint.CalledTemplate())
		}
		var m map[string]string
		if err := json.Unmarshal(g.AppendLine(nil, &c), &m); err != nil || m["requestId"] != c.RequestID {
			t.Fatalf("line is not the documented JSON: %v", err)
		}
	}
	if share := float64(errorsN) / n; share < 0.15 || share > 0.25 {
		t.Errorf("error share %.2f, want about 0.2", share)
	}
	if v6 == 0 || uuidPaths == 0 {
		t.Errorf("want IPv6 sources (%d) and UUID paths (%d)", v6, uuidPaths)
	}
	if len(seen) < len(eps)*9/10 {
		t.Errorf("only %d of %d endpoints called", len(seen), len(eps))
	}
}

func TestRecordsAndEnvelopes(t *testing.T) {
	t.Parallel()
	g := traffic.New(traffic.DefaultOptions())
	for _, r := range g.Records(5, 20, 60) {
		zr, err := gzip.NewReader(bytes.NewReader(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(zr)
		var env struct {
			MessageType, LogGroup string
			LogEvents             []struct {
				ID        string
				Timestamp int64
				Message   string
			}
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		if env.MessageType != "DATA_MESSAGE" || len(env.LogEvents) != len(r.Calls) || len(r.Calls) < 20 || len(r.Calls) > 60 {
			t.Fatalf("envelope %s with %d events for %d calls", env.MessageType, len(env.LogEvents), len(r.Calls))
		}
		for i, e := range env.LogEvents {
			c := r.Calls[i]
			if len(e.ID) != 56 || e.Timestamp != c.Time.UnixMilli() || !strings.Contains(e.Message, c.RequestID) ||
				env.LogGroup != c.Endpoint.API.LogGroup {
				t.Fatalf("event %d = %+v for call %+v", i, e, c)
			}
		}
	}
	var ctl map[string]any
	if err := json.Unmarshal(traffic.ControlMessage(), &ctl); err != nil || ctl["messageType"] != "CONTROL_MESSAGE" {
		t.Fatalf("control message: %v %v", err, ctl)
	}
}

func TestWriteLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := traffic.New(traffic.DefaultOptions()).WriteLines(&buf, 10); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 10 || !json.Valid([]byte(lines[9])) {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
}
