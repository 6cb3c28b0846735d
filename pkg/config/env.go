package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	durationType = reflect.TypeOf(time.Duration(0))
	timeType     = reflect.TypeOf(time.Time{})
)

// Setting is one leaf of the configuration tree.
type Setting struct {
	Path    string // YAML path, e.g. node.retry.max_backoff
	Env     string // its environment override
	Type    string // Go kind, for docs
	Default string // the default, written as its environment variable takes it ("" when empty)
}

// Settings lists every setting with its env name, in YAML order. Deploy
// templates and docs are checked against it.
func Settings() []Setting {
	var out []Setting
	cfg := Default()
	walk(reflect.ValueOf(&cfg).Elem(), nil, func(path []string, v reflect.Value) {
		out = append(out, Setting{Path: strings.Join(path, "."), Env: envName(path), Type: typeName(v.Type()), Default: envValue(v)})
	})
	return out
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == timeType:
		return "timestamp"
	case t.Kind() == reflect.Slice:
		return "list"
	case t.Kind() == reflect.Map:
		return "map"
	}
	return t.Kind().String()
}

func envName(path []string) string {
	return EnvPrefix + strings.ToUpper(strings.Join(path, "_"))
}

// yamlName is the key a struct field has in the YAML file; false for
// fields that are not settings.
func yamlName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name := strings.Split(f.Tag.Get("yaml"), ",")[0]
	switch name {
	case "-":
		return "", false
	case "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

// walk calls leaf for every settable leaf under v, with its YAML path.
func walk(v reflect.Value, path []string, leaf func(path []string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := yamlName(f)
		if !ok {
			continue
		}
		fv := v.Field(i)
		p := append(append([]string(nil), path...), name)
		if fv.Kind() == reflect.Struct && fv.Type() != timeType {
			walk(fv, p, leaf)
			continue
		}
		leaf(p, fv)
	}
}

// applyEnv sets every leaf whose override is present, and rejects any
// APIGW_CONNECTOR_* variable that names no setting (a typo would otherwise
// leave a default in force unnoticed). Every bad variable is reported.
func applyEnv(cfg *Config, getenv func(string) string, environ []string) error {
	known := map[string]bool{EnvConfigFile: true}
	names := []string{EnvConfigFile}
	var errs []error
	walk(reflect.ValueOf(cfg).Elem(), nil, func(path []string, v reflect.Value) {
		name := envName(path)
		known[name] = true
		names = append(names, name)
		raw := getenv(name)
		if raw == "" {
			return
		}
		if e := setFromString(v, raw, secretPath(path)); e != nil {
			errs = append(errs, fmt.Errorf("environment %s (setting %s): %w", name, strings.Join(path, "."), e))
		}
	})
	var unknown []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, EnvPrefix) && !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("environment %s names no setting: %sunset it or fix its name (the settings are listed by `apigw-connector check-config --list`)", k, didYouMean(k, names)))
	}
	return collect(errs...)
}

// setFromString sets v from its environment form. Lists and maps are
// comma-separated; "\," is a comma inside an item and "\\" a backslash (any
// other backslash is itself). A secret's value is never quoted in an error.
func setFromString(v reflect.Value, raw string, secret bool) error {
	raw = strings.TrimSpace(raw)
	shown := fmt.Sprintf("%q", raw)
	if secret {
		shown = "the value (not shown: it may hold a secret)"
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%s is not a Go duration such as 500ms, 10s or 1m", shown)
		}
		v.SetInt(int64(d))
		return nil
	case v.Type() == timeType:
		ts, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return fmt.Errorf("%s is not an RFC 3339 timestamp such as 2026-11-24T10:00:00Z", shown)
		}
		v.Set(reflect.ValueOf(ts))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%s is not a boolean (true or false)", shown)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%s is not an integer", shown)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%s is not a non-negative integer", shown)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(raw, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%s is not a number", shown)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("lists of %s cannot be set from the environment", v.Type().Elem())
		}
		var items []string
		for _, s := range splitEscaped(raw) {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("maps of %s cannot be set from the environment", v.Type())
		}
		m := reflect.MakeMap(v.Type())
		for _, kv := range splitEscaped(raw) {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, val, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("%s is not a comma-separated list of key=value pairs", shown)
			}
			m.SetMapIndex(reflect.ValueOf(strings.TrimSpace(k)), reflect.ValueOf(strings.TrimSpace(val)))
		}
		v.Set(m)
	default:
		return fmt.Errorf("settings of kind %s cannot be set from the environment", v.Kind())
	}
	return nil
}

// splitEscaped splits s at commas not written as "\,", undoing "\," and "\\".
func splitEscaped(s string) []string {
	if !strings.Contains(s, `\`) {
		return strings.Split(s, ",")
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '\\'):
			cur.WriteByte(s[i+1])
			i++
		case c == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// escapeItem writes an item of a list or map the way splitEscaped reads it.
func escapeItem(s string) string {
	return strings.NewReplacer(`\`, `\\`, ",", `\,`).Replace(s)
}

// envValue writes a setting's value the way its environment variable takes it.
func envValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Type() == timeType:
		if t := v.Interface().(time.Time); !t.IsZero() {
			return t.Format(time.RFC3339)
		}
		return ""
	}
	switch v.Kind() {
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = escapeItem(fmt.Sprint(v.Index(i).Interface()))
		}
		return strings.Join(items, ",")
	case reflect.Map:
		var items []string
		for _, k := range v.MapKeys() {
			items = append(items, fmt.Sprintf("%v=%v", k.Interface(), escapeItem(fmt.Sprint(v.MapIndex(k).Interface()))))
		}
		sort.Strings(items)
		return strings.Join(items, ",")
	}
	return fmt.Sprint(v.Interface())
}
