package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/inventory"
)

// inventory folds exported logs into the endpoints the generator's manifest
// describes, with no node, in every output format.
func TestInventoryCommand(t *testing.T) {
	t.Parallel()
	gz, lines, ids := genInputs(t, 21, 400)
	run1 := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(append([]string{"inventory"}, args...), strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), code
	}
	out, errs, code := run1("--format", "json", gz, lines)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var eps []inventory.Endpoint
	if err := json.Unmarshal([]byte(out), &eps); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, out)
	}
	var calls int64
	for _, e := range eps {
		calls += e.Calls
		if e.Host == "" || !strings.HasPrefix(e.Path, "/") {
			t.Errorf("endpoint without host or path: %+v", e)
		}
		if strings.ContainsAny(strings.ReplaceAll(e.Path, "{id}", ""), "0123456789") && strings.Count(e.Path, "/") > 1 {
			// generated ids are numeric or UUIDs: all must be folded
			for _, seg := range strings.Split(e.Path, "/") {
				if seg != "" && strings.Trim(seg, "0123456789") == "" {
					t.Errorf("unfolded id segment in %s", e.Path)
				}
			}
		}
	}
	if calls != int64(len(ids)) {
		t.Errorf("inventory counts %d calls, the inputs hold %d", calls, len(ids))
	}
	if len(eps) == 0 || len(eps) > 3*5*4 {
		t.Errorf("%d endpoints from 3 APIs x 5 endpoints", len(eps))
	}

	table, errs, code := run1(gz)
	if code != 0 || !strings.Contains(table, "HOST") || !strings.Contains(errs, "endpoints from") {
		t.Errorf("table: exit %d\n%s\n%s", code, table, errs)
	}
	doc, _, code := run1("--format", "openapi", gz)
	if code != 0 || !strings.Contains(doc, `"openapi": "3.1.0"`) || !strings.Contains(doc, "x-apigw-connector-calls") {
		t.Errorf("openapi: exit %d\n%s", code, doc)
	}
	if _, _, code := run1("--format", "xml", gz); code != 2 {
		t.Errorf("--format xml: exit %d, want 2", code)
	}
}

// A log without a host (nor an apiId to derive one) never files its calls
// under a made-up host.
func TestInventoryWithoutHost(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "nohost.json")
	line := `{"requestId":"r1","httpMethod":"GET","path":"/pets/1","status":"200"}` + "\n"
	if err := os.WriteFile(p, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"inventory", "--format", "json", p}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("got %s, want no endpoint", out.String())
	}
}
