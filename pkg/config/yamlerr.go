package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// explainYAML finds every key or value of a YAML document that does not
// fit the configuration and describes each with its line, its setting path, its
// environment variable and the expected form. The YAML decoder's own messages
// name only a Go type ("field ulr not found in type node.Config", "cannot
// unmarshal !!int `5` into time.Duration"); an operator needs the setting.
// It returns nil when it finds nothing more specific to say.
func explainYAML(data []byte) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	return explainNode(doc.Content[0], reflect.TypeOf(Config{}), nil)
}

func explainNode(n *yaml.Node, t reflect.Type, path []string) []string {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isSection(t) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			where := "the document"
			if len(path) > 0 {
				where = strings.Join(path, ".")
			}
			return []string{fmt.Sprintf("line %d: %s must be a mapping of settings, got %s", n.Line, where, describe(n))}
		}
		var msgs []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: the decoder checks the merged keys
				continue
			}
			f, ok := fieldByYAMLName(t, k.Value)
			p := append(append([]string(nil), path...), k.Value)
			if !ok {
				hint := ""
				if s := suggest(k.Value, keys(t)); s != "" {
					hint = fmt.Sprintf("did you mean %s? ", strings.Join(append(append([]string(nil), path...), s), "."))
				}
				msgs = append(msgs, fmt.Sprintf("line %d: %s names no setting: %sfix or remove it (the settings are listed by `apigw-connector check-config --list`%s)",
					k.Line, strings.Join(p, "."), hint, known(t)))
				continue
			}
			msgs = append(msgs, explainNode(v, f.Type, p)...)
		}
		return msgs
	}
	// A leaf: decode it alone into its type to see whether it fits.
	ptr := reflect.New(t)
	if err := n.Decode(ptr.Interface()); err != nil {
		name := strings.Join(path, ".")
		got := describe(n)
		if secretPath(path) {
			got = "the value (not shown: it may hold a secret)"
		}
		return []string{fmt.Sprintf("line %d: %s: %s is not %s: set %s (env %s)", n.Line, name, got, expected(t), name, envName(path))}
	}
	return nil
}

func isSection(t reflect.Type) bool { return t.Kind() == reflect.Struct && t != timeType }

// fieldByYAMLName finds the struct field a YAML key sets, as walk names them.
func fieldByYAMLName(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := yamlName(f); ok && name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keys lists the keys a section accepts.
func keys(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if name, ok := yamlName(t.Field(i)); ok {
			names = append(names, name)
		}
	}
	return names
}

// known lists the keys a section accepts, for a short hint.
func known(t reflect.Type) string {
	names := keys(t)
	if len(names) == 0 || len(names) > 25 {
		return ""
	}
	return "; here: " + strings.Join(names, ", ")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func expected(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 500ms, 10s or 1m"
	case t == timeType:
		return "an RFC 3339 timestamp such as 2026-11-24T10:00:00Z"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list such as [a, b]"
	case reflect.Map:
		return "a mapping of key: value"
	}
	return "a " + t.Kind().String()
}

// yamlValue matches the values the YAML decoder quotes in its messages
// ("cannot unmarshal !!str `S3CR3T-...` into ..."): a secret's first bytes.
var yamlValue = regexp.MustCompile("`[^`]*`")

// scrubYAMLError removes the values quoted in a YAML decoder message.
func scrubYAMLError(err error) string { return yamlValue.ReplaceAllString(err.Error(), "`...`") }
