package node

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzEncodeID checks the id header value: never empty for an id, visible ASCII
// only, at most maxIDBytes, and, below the cap, decodable back to the id (so
// two ids never share a value).
func FuzzEncodeID(f *testing.F) {
	for _, s := range []string{"c0ffee00-1111", " ", "\x00", "%", "%25", "a b", "\xff\xfe", strings.Repeat("%", 100), strings.Repeat("z", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		v := encodeID(id)
		if id != "" && v == "" {
			t.Fatalf("encodeID(%q) is empty", id)
		}
		if len(v) > maxIDBytes {
			t.Fatalf("encodeID(%q) has %d bytes, more than %d", id, len(v), maxIDBytes)
		}
		for i := 0; i < len(v); i++ {
			if v[i] <= ' ' || v[i] >= 0x7f {
				t.Fatalf("encodeID(%q) = %q has byte %#x", id, v, v[i])
			}
		}
		full := len(id)
		for i := 0; i < len(id); i++ {
			if idEscape(id[i]) {
				full += 2
			}
		}
		if full > maxIDBytes {
			return // capped: distinct through the hash
		}
		if got, ok := decodeIDForTest(v); !ok || got != id {
			t.Fatalf("encodeID(%q) = %q decodes to %q (%v)", id, v, got, ok)
		}
	})
}

func decodeIDForTest(v string) (string, bool) {
	var b []byte
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b = append(b, v[i])
			continue
		}
		if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
			return "", false
		}
		b = append(b, unhex(v[i+1])<<4|unhex(v[i+2]))
		i += 2
	}
	return string(b), true
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// FuzzIsDottedQuad checks bareIP's shortcut against netip: it accepts exactly
// the IPv4 addresses that netip.ParseAddr reads back unchanged, so bareIP's
// answer is the same with or without it.
func FuzzIsDottedQuad(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5",
		"1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4:80", "::1", "1.2.3.04", "", "1.2.3.4 ", "१.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := netip.ParseAddr(s)
		want := err == nil && a.Is4() && a.String() == s
		if got := isDottedQuad(s); got != want {
			t.Fatalf("isDottedQuad(%q) = %v, netip says %v (%v)", s, got, want, err)
		}
	})
}
