// Package deploy holds the tests of the shipping artefacts: the CloudFormation
// templates under cloudformation/, the Dockerfile and docker/compose.yaml.
// They check the invariants a reviewer would (least privilege, pinned images,
// settings that exist) so a template cannot drift from the code unnoticed.
package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/wallarm/apigw-connector/pkg/config"
)

var templateNames = []string{"kinesis-ecs.yaml", "firehose.yaml", "lambda.yaml", "central-destination.yaml", "source-account.yaml"}

// loaded is one template, typed (goformation) and as the processed JSON tree
// (for properties goformation's schema lacks, e.g. SecretsManagerConfiguration).
type loaded struct {
	name  string
	text  string
	tmpl  *cloudformation.Template
	tree  map[string]any
	param map[string]cloudformation.Parameter
}

// Intrinsics are resolved into readable markers instead of goformation's
// defaults (which turn GetAtt into null): "{GetAtt:Stream.Arn}",
// "{Ref:LeaseTable}". A Ref to a parameter with a default resolves to that
// default (numbers must stay numbers for the typed structs); Fn::Sub keeps its
// template string; Fn::If takes its "true" branch so conditional content is
// checked too.
func processorOptions() *intrinsics.ProcessorOptions {
	return &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
		"Ref":        refHandler,
		"Fn::GetAtt": getAttHandler,
		"Fn::Sub":    subHandler,
		"Fn::If":     ifHandler,
	}}
}

func refHandler(_ string, input any, template any) any {
	name, ok := input.(string)
	if !ok {
		return nil
	}
	if name == "AWS::NoValue" {
		return nil
	}
	marker := "{Ref:" + name + "}"
	tm, _ := template.(map[string]any)
	params, _ := tm["Parameters"].(map[string]any)
	if p, ok := params[name].(map[string]any); ok {
		if def, ok := p["Default"]; ok {
			return def
		}
		if typ, _ := p["Type"].(string); strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
			return []any{marker}
		}
	}
	return marker
}

func getAttHandler(_ string, input any, _ any) any {
	switch v := input.(type) {
	case string:
		return "{GetAtt:" + v + "}"
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = fmt.Sprint(p)
		}
		return "{GetAtt:" + strings.Join(parts, ".") + "}"
	}
	return nil
}

func subHandler(_ string, input any, _ any) any {
	switch v := input.(type) {
	case string:
		return v
	case []any:
		if len(v) > 0 {
			return v[0]
		}
	}
	return nil
}

func ifHandler(_ string, input any, _ any) any {
	if arr, ok := input.([]any); ok && len(arr) == 3 {
		return arr[1]
	}
	return nil
}

// newerThanGoformation lists properties that CloudFormation accepts but
// goformation v7.14.9's schema does not know (it rejects unknown fields).
// They are removed before the typed parse and checked on the processed tree.
var newerThanGoformation = map[string][]string{
	"AWS::KinesisFirehose::DeliveryStream": {"HttpEndpointDestinationConfiguration.SecretsManagerConfiguration"},
}

var goformationMu sync.Mutex

func loadTemplate(t *testing.T, name string) loaded {
	t.Helper()
	path := filepath.Join("cloudformation", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	// goformation registers YAML tag resolvers in a package-level map on every
	// call: parallel tests must not process templates at the same time.
	goformationMu.Lock()
	defer goformationMu.Unlock()
	js, err := intrinsics.ProcessYAML(data, processorOptions())
	if err != nil {
		t.Fatalf("process %s: %v", path, err)
	}
	var tree, pruned map[string]any
	if err := json.Unmarshal(js, &tree); err != nil {
		t.Fatalf("decode processed %s: %v", path, err)
	}
	_ = json.Unmarshal(js, &pruned)
	resources, _ := pruned["Resources"].(map[string]any)
	for _, r := range resources {
		rm, _ := r.(map[string]any)
		typ, _ := rm["Type"].(string)
		for _, prop := range newerThanGoformation[typ] {
			keys := strings.Split(prop, ".")
			parent, _ := rm["Properties"].(map[string]any)
			for _, k := range keys[:len(keys)-1] {
				parent, _ = parent[k].(map[string]any)
			}
			delete(parent, keys[len(keys)-1])
		}
	}
	prunedJSON, err := json.Marshal(pruned)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := goformation.ParseJSONWithOptions(prunedJSON, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatalf("goformation cannot parse %s: %v", path, err)
	}
	params := map[string]cloudformation.Parameter{}
	for k, v := range tmpl.Parameters {
		params[k] = v
	}
	return loaded{name: name, text: string(data), tmpl: tmpl, tree: tree, param: params}
}

// props returns the processed Properties map of a resource.
func (l loaded) props(t *testing.T, logicalID string) map[string]any {
	t.Helper()
	res, _ := l.tree["Resources"].(map[string]any)
	r, ok := res[logicalID].(map[string]any)
	if !ok {
		t.Fatalf("%s: resource %s missing", l.name, logicalID)
	}
	p, _ := r["Properties"].(map[string]any)
	return p
}

// resourcesOfType lists logical ids of one type, sorted.
func (l loaded) resourcesOfType(typ string) []string {
	var ids []string
	res, _ := l.tree["Resources"].(map[string]any)
	for id, r := range res {
		if m, ok := r.(map[string]any); ok && m["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// path walks maps by key and lists by index ("0").
func path(v any, keys ...string) any {
	for _, k := range keys {
		switch c := v.(type) {
		case map[string]any:
			v = c[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// strs flattens a string or list of strings.
func strs(v any) []string {
	switch c := v.(type) {
	case string:
		return []string{c}
	case []any:
		var out []string
		for _, e := range c {
			out = append(out, strs(e)...)
		}
		return out
	case []string:
		return c
	}
	return nil
}

// knownEnv is every environment variable the connector binaries read:
// config.Settings(), the official Lambda's variables and the AWS SDK's own.
func knownEnv() map[string]bool {
	known := map[string]bool{
		config.EnvConfigFile: true,
		"X_NODE_URL":         true, "X_NODE_SCHEME": true,
		"AWS_REGION": true, "AWS_DEFAULT_REGION": true,
		"AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true,
		"AWS_ENDPOINT_URL": true, "AWS_ENDPOINT_URL_KINESIS": true, "AWS_ENDPOINT_URL_DYNAMODB": true,
		"AWS_PROFILE": true,
	}
	for _, s := range config.Settings() {
		known[s.Env] = true
	}
	return known
}
