package jsonscan

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// randJSONString builds a JSON string literal from pieces that stress the
// block loop: escapes at block edges, long plain runs, escaped backslashes.
func randJSONString(r *rand.Rand) string {
	pieces := []string{`\"`, `\\`, `\/`, `\n`, `\t`, `\u00e9`, `\ud83d\ude00`, `a`, `bcdefgh`, strings.Repeat("x", 63), `\\\"`, `é`, ` `}
	var sb strings.Builder
	sb.WriteByte('"')
	for n := r.IntN(60); n > 0; n-- {
		sb.WriteString(pieces[r.IntN(len(pieces))])
	}
	sb.WriteByte('"')
	return sb.String()
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		lit := randJSONString(r)
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("bad test literal %s: %v", lit, err)
		}
		for _, pad := range []string{"", strings.Repeat(" ", 80)} {
			prefix := strings.Repeat("p", r.IntN(9))
			src := []byte(prefix + lit + `,"next":"z\"` + pad)
			got, end, err := AppendString([]byte("keep"), src, len(prefix))
			if err != nil || string(got) != "keep"+want || end != len(prefix)+len(lit) {
				t.Fatalf("AppendString(%s) = %q, %d, %v; want %q, %d", lit, got, end, err, want, len(prefix)+len(lit))
			}
			sEnd, esc, err := String(src, len(prefix))
			if err != nil || sEnd != end || esc != strings.Contains(lit, `\`) {
				t.Fatalf("String(%s) = %d %v %v", lit, sEnd, esc, err)
			}
			u, err := AppendUnescaped(nil, []byte(lit[1:len(lit)-1]))
			if err != nil || string(u) != want {
				t.Fatalf("AppendUnescaped(%s) = %q %v", lit, u, err)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`"abc`, `"abc\`, `"abcdefg\`, `"\x"`, `"\u12"`, `"` + strings.Repeat("a", 100), `"` + strings.Repeat("a", 100) + `\q` + strings.Repeat("a", 100) + `"`} {
		if _, _, err := AppendString(nil, []byte(in), 0); err == nil {
			t.Errorf("AppendString(%q): no error", in)
		}
	}
	for _, in := range []string{`{"a":[}`, `[[[`, `{"a":"}`, `]`} {
		if _, err := Skip([]byte(in), 0); err == nil {
			t.Errorf("Skip(%q): no error", in)
		}
	}
	deep := strings.Repeat("[", MaxDepth+1)
	if _, err := Skip([]byte(deep), 0); err != ErrTooDeep {
		t.Errorf("Skip(deep) = %v", err)
	}
}

func TestInt(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "42": 42, "-7": -7, "+3": 3, "12.9": 12, "9223372036854775807": 1<<63 - 1} {
		if got, ok := Int([]byte(in)); !ok || got != want {
			t.Errorf("Int(%q) = %d %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", ".", "1e3", "abc", "9223372036854775808", "1.2.3", "1.x"} {
		if _, ok := Int([]byte(in)); ok {
			t.Errorf("Int(%q) accepted", in)
		}
	}
}

func TestSkip(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{`{"a":[1,"]}"]} x`: 14, ` "s\"" ,`: 6, `123,`: 3, `null}`: 4, `[]`: 2} {
		if got, err := Skip([]byte(in), 0); err != nil || got != want {
			t.Errorf("Skip(%q) = %d %v, want %d", in, got, err, want)
		}
	}
}
