package filterpattern

import "testing"

func TestMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, line string
		want          bool
	}{
		{"", "anything at all", true},
		{"  ", `{"a":1}`, true},
		{`{ $.a = * }`, `{"a":"x"}`, true},
		{`{ $.a = * }`, `{"a":""}`, true},
		{`{ $.a = * }`, `{"b":"x"}`, false},
		{`{ $.a = * }`, `{"a":null}`, false},
		{`{ $.a = * }`, `{"a":200}`, false}, // strict: a wildcard is a string comparison
		{`{ $.a > 0 }`, `{"a":200}`, true},
		{`{ $.a > 0 }`, `{"a":"200"}`, false},
		{`{ $.a >= 200 }`, `{"a":200}`, true},
		{`{ $.a < 200 }`, `{"a":200}`, false},
		{`{ $.a <= 200 }`, `{"a":200}`, true},
		{`{ $.a = 200 }`, `{"a":200}`, true},
		{`{ $.a != 200 }`, `{"a":201}`, true},
		{`{ $.a = "GET" }`, `{"a":"GET"}`, true},
		{`{ $.a = GET }`, `{"a":"GET"}`, true},
		{`{ $.a = "GE*" }`, `{"a":"GET"}`, true},
		{`{ $.a = *T }`, `{"a":"GET"}`, true},
		{`{ $.a = G*T }`, `{"a":"GET"}`, true},
		{`{ $.a = G*X }`, `{"a":"GET"}`, false},
		{`{ $.a != "GET" }`, `{"a":"PUT"}`, true},
		{`{ $.a != "GET" }`, `{"b":"PUT"}`, false},
		{`{ $.a.b = x }`, `{"a":{"b":"x"}}`, true},
		{`{ $.a.b = x }`, `{"a":"x"}`, false},
		{`{ $.a IS NULL }`, `{"a":null}`, true},
		{`{ $.a IS NULL }`, `{"b":1}`, false},
		{`{ $.a NOT EXISTS }`, `{"b":1}`, true},
		{`{ $.a NOT EXISTS }`, `{"a":1}`, false},
		{`{ $.a = * && $.b = * }`, `{"a":"1","b":"2"}`, true},
		{`{ $.a = * && $.b = * }`, `{"a":"1"}`, false},
		{`{ $.a = * || $.b = * }`, `{"b":"2"}`, true},
		{`{ $.a = * && ($.b = * || $.b > 0) }`, `{"a":"x","b":3}`, true},
		{`{ $.a = * && ($.b = * || $.b > 0) }`, `{"a":"x","b":"3"}`, true},
		{`{ $.a = * && ($.b = * || $.b > 0) }`, `{"a":"x"}`, false},
		{`{ $.a = * && ($.b = * || $.b > 0) }`, `{"b":"3"}`, false},
		// && binds tighter than ||.
		{`{ $.a = x || $.b = y && $.c = z }`, `{"a":"x"}`, true},
		{`{ ($.a = x || $.b = y) && $.c = z }`, `{"a":"x"}`, false},
		// Not a JSON object: no JSON pattern matches.
		{`{ $.a = * }`, `START RequestId: 1 Version: $LATEST`, false},
		{`{ $.a = * }`, `["a"]`, false},
		{`{ $.a = * }`, `{"a":"x"} trailing`, false},
		{`{ $.a = * }`, `{"a":"x"`, false},
		{`{ $.a = * }`, `  {"a":"x"}  `, true},
	}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.pattern, err)
			continue
		}
		if got := p.Match(c.line); got != c.want {
			t.Errorf("%s on %s = %v, want %v", c.pattern, c.line, got, c.want)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		`ERROR`,               // term pattern: unsupported
		`[ip, user, ...]`,     // space-delimited: unsupported
		`{ $.a }`,             // no comparison
		`{ $.a = }`,           // no value
		`{ $.a > x }`,         // numeric operator with a string
		`{ $.a = * && }`,      // dangling operator
		`{ ($.a = * }`,        // unbalanced
		`{ $.a = * ) }`,       // unbalanced
		`{ a = * }`,           // not a selector
		`{ $. = * }`,          // empty selector
		`{ $.a = "x }`,        // unterminated string
		`{ $.a IS EMPTY }`,    // unknown keyword
		`{ $.a = * $.b = * }`, // missing operator between terms
	} {
		if _, err := Compile(src); err == nil {
			t.Errorf("Compile(%q) accepted an unsupported or malformed pattern", src)
		}
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "abc", true}, {"*c", "abc", true},
		{"a*c", "abc", true}, {"a*c", "ac", true}, {"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false}, {"abc", "abc", true}, {"abc", "abcd", false},
		{"a**", "a", true}, {"*a*", "bab", true}, {"*a*", "bbb", false},
	} {
		if got := glob(c.pat, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v, want %v", c.pat, c.s, got, c.want)
		}
	}
}
