package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// A small CloudFormation evaluator for tests that need a template as
// CloudFormation would see it with given parameter values: Rules (which
// goformation ignores), both branches of Fn::If, Fn::Sub with a variable map,
// Fn::Join/Fn::Split. GetAtt stays a marker ("{GetAtt:Stream.Arn}").

// rawTemplate parses YAML with CloudFormation's short tags expanded into their
// long forms (!Ref x -> {"Ref": x}, !GetAtt a.b -> {"Fn::GetAtt": [a, b]}).
func rawTemplate(t *testing.T, name string) map[string]any {
	t.Helper()
	rawMu.Lock()
	defer rawMu.Unlock()
	if m, ok := rawCache[name]; ok {
		return m
	}
	data, err := os.ReadFile(filepath.Join("cloudformation", name))
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	v, err := yamlValue(root.Content[0])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a mapping", name)
	}
	rawCache[name] = m
	return m
}

// Parsed templates are shared read-only: eval builds new values.
var (
	rawMu    sync.Mutex
	rawCache = map[string]map[string]any{}
)

func yamlValue(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.AliasNode:
		return yamlValue(n.Alias)
	case yaml.ScalarNode:
		v = n.Value
		if n.Tag == "!!int" || n.Tag == "!!float" {
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return nil, err
			}
			v = f
		} else if n.Tag == "!!bool" {
			v = n.Value == "true"
		}
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			cv, err := yamlValue(c)
			if err != nil {
				return nil, err
			}
			l = append(l, cv)
		}
		v = l
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			cv, err := yamlValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = cv
		}
		v = m
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		fn := strings.TrimPrefix(n.Tag, "!")
		switch fn {
		case "Ref", "Condition":
			return map[string]any{fn: v}, nil
		case "GetAtt":
			if s, ok := v.(string); ok {
				id, attr, _ := strings.Cut(s, ".")
				v = []any{id, attr}
			}
		}
		return map[string]any{"Fn::" + fn: v}, nil
	}
	return v, nil
}

// stack is a template evaluated with parameter values (defaults filled in).
type stack struct {
	t      *testing.T
	name   string
	tmpl   map[string]any
	params map[string]string
	conds  map[string]bool
}

var pseudo = map[string]string{
	"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "999999999999",
	"AWS::StackName": "apigw-test", "AWS::URLSuffix": "amazonaws.com",
}

func newStack(t *testing.T, name string, params map[string]string) *stack {
	t.Helper()
	s := &stack{t: t, name: name, tmpl: rawTemplate(t, name), params: map[string]string{}, conds: map[string]bool{}}
	for pname, p := range obj(s.tmpl["Parameters"]) {
		if v, ok := params[pname]; ok {
			s.params[pname] = v
		} else if d, ok := obj(p)["Default"]; ok {
			s.params[pname] = scalar(d)
		} else {
			s.params[pname] = "{Param:" + pname + "}" // required, not given: a marker
		}
	}
	for k := range params {
		if _, ok := obj(s.tmpl["Parameters"])[k]; !ok {
			t.Fatalf("%s has no parameter %s", name, k)
		}
	}
	for c := range obj(s.tmpl["Conditions"]) {
		s.cond(c)
	}
	return s
}

func scalar(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func (s *stack) cond(name string) bool {
	if v, ok := s.conds[name]; ok {
		return v
	}
	c, ok := obj(s.tmpl["Conditions"])[name]
	if !ok {
		s.t.Fatalf("%s: undeclared condition %s", s.name, name)
	}
	v := s.truth(c)
	s.conds[name] = v
	return v
}

// truth evaluates a condition or rule function.
func (s *stack) truth(v any) bool {
	m := obj(v)
	if len(m) != 1 {
		s.t.Fatalf("%s: condition %v is not a single function", s.name, v)
	}
	for fn, arg := range m {
		args := list(arg)
		switch fn {
		case "Condition":
			return s.cond(arg.(string))
		case "Fn::Equals":
			return fmt.Sprint(s.eval(args[0])) == fmt.Sprint(s.eval(args[1]))
		case "Fn::Not":
			return !s.truth(args[0])
		case "Fn::And", "Fn::Or":
			if len(args) < 2 || len(args) > 10 {
				s.t.Fatalf("%s: %s takes 2-10 conditions, got %d", s.name, fn, len(args))
			}
			for _, a := range args {
				if s.truth(a) == (fn == "Fn::Or") {
					return fn == "Fn::Or"
				}
			}
			return fn == "Fn::And"
		case "Fn::Contains":
			val := fmt.Sprint(s.eval(args[1]))
			for _, e := range list(s.eval(args[0])) {
				if fmt.Sprint(e) == val {
					return true
				}
			}
			return false
		}
		s.t.Fatalf("%s: unsupported condition function %s", s.name, fn)
	}
	return false
}

// eval resolves intrinsics; NoValue is removed from maps and lists.
func (s *stack) eval(v any) any {
	switch c := v.(type) {
	case []any:
		out := []any{}
		for _, e := range c {
			if r := s.eval(e); r != noValue {
				out = append(out, r)
			}
		}
		return out
	case map[string]any:
		if len(c) == 1 {
			for fn, arg := range c {
				if r, ok := s.intrinsic(fn, arg); ok {
					return r
				}
			}
		}
		out := map[string]any{}
		for k, e := range c {
			if r := s.eval(e); r != noValue {
				out[k] = r
			}
		}
		return out
	}
	return v
}

type noValueT struct{}

var noValue = noValueT{}

func (s *stack) ref(name string) any {
	if name == "AWS::NoValue" {
		return noValue
	}
	if v, ok := pseudo[name]; ok {
		return v
	}
	if p, ok := obj(s.tmpl["Parameters"])[name]; ok {
		v, ok := s.params[name]
		if !ok {
			s.t.Fatalf("%s: parameter %s has no value", s.name, name)
		}
		if typ := fmt.Sprint(obj(p)["Type"]); strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
			l := []any{}
			for _, e := range strings.Split(v, ",") {
				l = append(l, e)
			}
			return l
		}
		return v
	}
	if _, ok := obj(s.tmpl["Resources"])[name]; ok {
		return "{Ref:" + name + "}"
	}
	s.t.Fatalf("%s: Ref to unknown %s", s.name, name)
	return nil
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func (s *stack) intrinsic(fn string, arg any) (any, bool) {
	switch fn {
	case "Ref":
		return s.ref(arg.(string)), true
	case "Fn::GetAtt":
		parts := strs(arg)
		return "{GetAtt:" + strings.Join(parts, ".") + "}", true
	case "Fn::If":
		args := list(arg)
		if s.cond(args[0].(string)) {
			return s.eval(args[1]), true
		}
		return s.eval(args[2]), true
	case "Fn::Join":
		args := list(arg)
		var parts []string
		for _, e := range list(s.eval(args[1])) {
			parts = append(parts, fmt.Sprint(e))
		}
		return strings.Join(parts, args[0].(string)), true
	case "Fn::Split":
		args := list(arg)
		l := []any{}
		for _, e := range strings.Split(fmt.Sprint(s.eval(args[1])), args[0].(string)) {
			l = append(l, e)
		}
		return l, true
	case "Fn::Sub":
		var tmpl string
		vars := map[string]any{}
		switch a := arg.(type) {
		case string:
			tmpl = a
		case []any:
			tmpl = a[0].(string)
			for k, e := range obj(a[1]) {
				vars[k] = s.eval(e)
			}
		}
		return subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
			name := m[2 : len(m)-1]
			if v, ok := vars[name]; ok {
				return fmt.Sprint(v)
			}
			if id, attr, ok := strings.Cut(name, "."); ok {
				if _, isRes := obj(s.tmpl["Resources"])[id]; isRes {
					return "{GetAtt:" + id + "." + attr + "}"
				}
			}
			return fmt.Sprint(s.ref(name))
		}), true
	}
	return nil, false
}

// resources returns the resources that exist under the parameters, evaluated.
func (s *stack) resources() map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range obj(s.tmpl["Resources"]) {
		rm := obj(r)
		if c, ok := rm["Condition"].(string); ok && !s.cond(c) {
			continue
		}
		out[id] = obj(s.eval(rm))
	}
	return out
}

// ruleFailures returns the AssertDescriptions of the Rules that fail.
func (s *stack) ruleFailures() []string {
	var failed []string
	for name, r := range obj(s.tmpl["Rules"]) {
		rm := obj(r)
		if c, ok := rm["RuleCondition"]; ok && !s.truth(c) {
			continue
		}
		for _, a := range list(rm["Assertions"]) {
			if !s.truth(obj(a)["Assert"]) {
				failed = append(failed, name+": "+fmt.Sprint(obj(a)["AssertDescription"]))
			}
		}
	}
	sort.Strings(failed)
	return failed
}
