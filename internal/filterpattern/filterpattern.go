// Package filterpattern evaluates the subset of the CloudWatch Logs filter
// pattern syntax for JSON log events that the CloudFormation templates use, so
// tests can check which log lines a subscription forwards without an AWS
// account.
//
// Supported (AWS's "Using filter patterns to match terms in JSON log events"):
//
//	{ <expr> }
//	expr     := and ( "||" and )*
//	and      := unary ( "&&" unary )*
//	unary    := "(" expr ")" | selector op value | selector "IS NULL" | selector "NOT EXISTS"
//	selector := "$." name ( "." name )*
//	op       := "=" | "!=" | ">" | "<" | ">=" | "<="
//	value    := "*" | "quoted string" | number | bare-word (may hold * wildcards)
//
// and the empty pattern, which matches every event. Semantics follow the
// strict reading of AWS's grammar: "=" and "!=" compare strings (a bare or
// quoted word, with "*" matching any run of characters, so `= *` means "the
// field is a string"), while ">", "<", ">=", "<=" and a numeric right-hand side
// compare JSON numbers only. A field that is absent, or of the other type,
// never matches (not even "!="). An event that is not a JSON object matches no
// JSON pattern. Space-delimited and term patterns are not supported: Compile
// rejects them, so a template cannot silently use syntax this package does not
// evaluate.
package filterpattern

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Pattern is a compiled filter pattern.
type Pattern struct {
	src  string
	root node // nil: the empty pattern, matches everything
}

// String returns the pattern's source.
func (p *Pattern) String() string { return p.src }

type node interface {
	eval(doc map[string]any) bool
}

type and struct{ l, r node }
type or struct{ l, r node }

func (n and) eval(d map[string]any) bool { return n.l.eval(d) && n.r.eval(d) }
func (n or) eval(d map[string]any) bool  { return n.l.eval(d) || n.r.eval(d) }

type cmp struct {
	path   []string
	op     string // = != > < >= <= ISNULL NOTEXISTS
	str    string // string operand (glob)
	num    float64
	numRHS bool
}

func (c cmp) eval(d map[string]any) bool {
	v, ok := lookup(d, c.path)
	switch c.op {
	case "NOTEXISTS":
		return !ok
	case "ISNULL":
		return ok && v == nil
	}
	if !ok || v == nil {
		return false
	}
	if c.numRHS {
		n, isNum := v.(json.Number)
		if !isNum {
			return false
		}
		f, err := n.Float64()
		if err != nil {
			return false
		}
		switch c.op {
		case "=":
			return f == c.num
		case "!=":
			return f != c.num
		case ">":
			return f > c.num
		case "<":
			return f < c.num
		case ">=":
			return f >= c.num
		case "<=":
			return f <= c.num
		}
		return false
	}
	s, isStr := v.(string)
	if !isStr {
		return false
	}
	m := glob(c.str, s)
	if c.op == "!=" {
		return !m
	}
	return m
}

func lookup(d map[string]any, path []string) (any, bool) {
	var cur any = d
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[k]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// glob matches s against pat where '*' matches any run of characters.
func glob(pat, s string) bool {
	parts := strings.Split(pat, "*")
	if len(parts) == 1 {
		return pat == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

// Match reports whether the log event message would be forwarded.
func (p *Pattern) Match(message string) bool {
	if p.root == nil {
		return true
	}
	b := bytes.TrimSpace([]byte(message))
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return false
	}
	if dec.More() { // trailing content: not one JSON object
		return false
	}
	return p.root.eval(doc)
}

// Compile parses a pattern. The empty (or all-blank) pattern matches everything.
func Compile(src string) (*Pattern, error) {
	p := &Pattern{src: src}
	s := strings.TrimSpace(src)
	if s == "" {
		return p, nil
	}
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, fmt.Errorf("filter pattern %q: only JSON patterns ({ ... }) are supported", src)
	}
	toks, err := lex(s[1 : len(s)-1])
	if err != nil {
		return nil, fmt.Errorf("filter pattern %q: %w", src, err)
	}
	ps := &parser{toks: toks}
	root, err := ps.expr()
	if err != nil {
		return nil, fmt.Errorf("filter pattern %q: %w", src, err)
	}
	if ps.i != len(ps.toks) {
		return nil, fmt.Errorf("filter pattern %q: unexpected %q", src, ps.toks[ps.i].text)
	}
	p.root = root
	return p, nil
}

// MustCompile is Compile that panics on error.
func MustCompile(src string) *Pattern {
	p, err := Compile(src)
	if err != nil {
		panic(err)
	}
	return p
}

type tokKind int

const (
	tSel tokKind = iota
	tOp
	tAnd
	tOr
	tLParen
	tRParen
	tValue  // bare word or number
	tQuoted // quoted string
	tKeyword
)

type token struct {
	kind tokKind
	text string
}

func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "("})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")"})
			i++
		case strings.HasPrefix(s[i:], "&&"):
			toks = append(toks, token{tAnd, "&&"})
			i += 2
		case strings.HasPrefix(s[i:], "||"):
			toks = append(toks, token{tOr, "||"})
			i += 2
		case strings.HasPrefix(s[i:], "!=") || strings.HasPrefix(s[i:], ">=") || strings.HasPrefix(s[i:], "<="):
			toks = append(toks, token{tOp, s[i : i+2]})
			i += 2
		case c == '=' || c == '>' || c == '<':
			toks = append(toks, token{tOp, s[i : i+1]})
			i++
		case c == '"':
			j := i + 1
			var b strings.Builder
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated quoted string")
			}
			toks = append(toks, token{tQuoted, b.String()})
			i = j + 1
		case strings.HasPrefix(s[i:], "$."):
			j := i + 2
			for j < len(s) && (isNameByte(s[j]) || s[j] == '.') {
				j++
			}
			sel := s[i:j]
			if strings.HasSuffix(sel, ".") || strings.Contains(sel, "..") || j == i+2 {
				return nil, fmt.Errorf("bad selector %q", sel)
			}
			toks = append(toks, token{tSel, sel})
			i = j
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n()&|=!<>\"", rune(s[j])) {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected %q", s[i:i+1])
			}
			w := s[i:j]
			switch w {
			case "IS", "NULL", "NOT", "EXISTS":
				toks = append(toks, token{tKeyword, w})
			default:
				toks = append(toks, token{tValue, w})
			}
			i = j
		}
	}
	return toks, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{}, false
}

func (p *parser) expr() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tOr {
			return l, nil
		}
		p.i++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = or{l, r}
	}
}

func (p *parser) and() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tAnd {
			return l, nil
		}
		p.i++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = and{l, r}
	}
}

func (p *parser) unary() (node, error) {
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("unexpected end of pattern")
	}
	if t.kind == tLParen {
		p.i++
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if t, ok := p.peek(); !ok || t.kind != tRParen {
			return nil, fmt.Errorf("missing )")
		}
		p.i++
		return n, nil
	}
	if t.kind != tSel {
		return nil, fmt.Errorf("expected a $.selector, got %q", t.text)
	}
	p.i++
	c := cmp{path: strings.Split(strings.TrimPrefix(t.text, "$."), ".")}
	t, ok = p.peek()
	if !ok {
		return nil, fmt.Errorf("selector %s has no comparison", strings.Join(c.path, "."))
	}
	if t.kind == tKeyword {
		if p.i+1 < len(p.toks) {
			a, b := t.text, p.toks[p.i+1].text
			switch {
			case a == "IS" && b == "NULL":
				p.i += 2
				c.op = "ISNULL"
				return c, nil
			case a == "NOT" && b == "EXISTS":
				p.i += 2
				c.op = "NOTEXISTS"
				return c, nil
			}
		}
		return nil, fmt.Errorf("unsupported keyword %q", t.text)
	}
	if t.kind != tOp {
		return nil, fmt.Errorf("expected an operator after the selector, got %q", t.text)
	}
	c.op = t.text
	p.i++
	v, ok := p.peek()
	if !ok || (v.kind != tValue && v.kind != tQuoted) {
		return nil, fmt.Errorf("operator %s has no value", c.op)
	}
	p.i++
	if v.kind == tValue {
		if f, err := strconv.ParseFloat(v.text, 64); err == nil {
			c.num, c.numRHS = f, true
		}
	}
	if !c.numRHS {
		if c.op != "=" && c.op != "!=" {
			return nil, fmt.Errorf("operator %s needs a number, got %q", c.op, v.text)
		}
		c.str = v.text
	}
	return c, nil
}
