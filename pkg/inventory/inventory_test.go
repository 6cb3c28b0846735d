package inventory

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

func sample() []Endpoint {
	inv := New()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	add := func(host, method, path string, status int, d time.Duration) {
		inv.Add(host, method, path, status, t0.Add(d))
	}
	add("api.shop.example.com", "GET", "/users/42", 200, 0)
	add("api.shop.example.com", "GET", "/users/43", 404, time.Minute)
	add("api.shop.example.com", "GET", "/users/42/orders/c0ffee00-1111-2222-3333-444455556666", 200, 2*time.Minute)
	add("api.shop.example.com", "POST", "/users", 201, 3*time.Minute)
	add("api.shop.example.com", "BREW", "/coffee", 418, 3*time.Minute) // no OpenAPI field for it
	add("abc123.execute-api.eu-west-1.amazonaws.com", "GET", "/prod/health", 200, time.Second)
	add("abc123.execute-api.eu-west-1.amazonaws.com", "GET", "/users/7", 200, time.Second)
	return inv.Snapshot()
}

func TestFoldsAndCounts(t *testing.T) {
	t.Parallel()
	eps := sample()
	var got []string
	for _, e := range eps {
		got = append(got, e.Host+" "+e.Method+" "+e.Path)
	}
	want := []string{
		"abc123.execute-api.eu-west-1.amazonaws.com GET /prod/health",
		"abc123.execute-api.eu-west-1.amazonaws.com GET /users/{id}",
		"api.shop.example.com BREW /coffee",
		"api.shop.example.com POST /users",
		"api.shop.example.com GET /users/{id}",
		"api.shop.example.com GET /users/{id}/orders/{id}",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("endpoints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range eps {
		if e.Method == "GET" && e.Path == "/users/{id}" && e.Host == "api.shop.example.com" {
			if e.Calls != 2 || e.Statuses[200] != 1 || e.Statuses[404] != 1 || !e.LastSeen.After(e.FirstSeen) {
				t.Errorf("GET /users/{id}: %+v", e)
			}
		}
	}
}

func TestConcurrentAdd(t *testing.T) {
	t.Parallel()
	inv := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				inv.Add("h", "GET", "/items/"+string(rune('0'+i))+string(rune('0'+j%10)), 200, time.Now())
			}
		})
	}
	wg.Wait()
	eps := inv.Snapshot()
	if len(eps) != 1 || eps[0].Calls != 4000 {
		t.Fatalf("got %+v, want one endpoint with 4000 calls", eps)
	}
}

// The OpenAPI output is a valid OpenAPI 3.1 document (checked against the
// specification's schema by libopenapi-validator) with the inventory in it.
func TestOpenAPIValid(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteOpenAPI(&b, sample(), "Observed APIs"); err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(b.Bytes())
	if err != nil {
		t.Fatalf("not an OpenAPI document: %v\n%s", err, b.String())
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("schema: %s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s at %s", se.Reason, se.FieldPath)
			}
		}
		t.Fatalf("document:\n%s", b.String())
	}
	var parsed struct {
		OpenAPI string `json:"openapi"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			Responses map[string]struct {
				Calls int64 `json:"x-apigw-connector-calls"`
			} `json:"responses"`
			Calls int64 `json:"x-apigw-connector-calls"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b.Bytes(), &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.OpenAPI != "3.1.0" || len(parsed.Servers) != 2 {
		t.Errorf("openapi %q, servers %v", parsed.OpenAPI, parsed.Servers)
	}
	op := parsed.Paths["/users/{id}/orders/{id2}"]["get"]
	if len(op.Parameters) != 2 || op.Parameters[0].Name != "id" || op.Parameters[1].Name != "id2" || op.Parameters[1].In != "path" {
		t.Errorf("path parameters: %+v", op.Parameters)
	}
	users := parsed.Paths["/users/{id}"]["get"]
	if users.Calls != 3 || users.Responses["200"].Calls != 2 || users.Responses["404"].Calls != 1 {
		t.Errorf("GET /users/{id} (two hosts): %+v", users)
	}
	if _, ok := parsed.Paths["/coffee"]; ok {
		t.Errorf("a method OpenAPI cannot express made a path: %v", parsed.Paths["/coffee"])
	}
}

func TestTableAndJSON(t *testing.T) {
	t.Parallel()
	var tb, jb bytes.Buffer
	if err := WriteTable(&tb, sample()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "GET     /users/{id}/orders/{id}") && !strings.Contains(tb.String(), "/users/{id}/orders/{id}") {
		t.Errorf("table:\n%s", tb.String())
	}
	if lines := strings.Count(tb.String(), "\n"); lines != 7 {
		t.Errorf("table has %d lines, want header + 6:\n%s", lines, tb.String())
	}
	if err := WriteJSON(&jb, sample()); err != nil {
		t.Fatal(err)
	}
	var eps []Endpoint
	if err := json.Unmarshal(jb.Bytes(), &eps); err != nil || len(eps) != 6 {
		t.Errorf("JSON: %d endpoints, %v", len(eps), err)
	}
}

// The schema check is real: a response without its required description fails it.
func TestOpenAPIValidatorRejectsInvalid(t *testing.T) {
	t.Parallel()
	bad := []byte(`{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{}}}}}}`)
	doc, err := libopenapi.NewDocument(bad)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, _ := v.ValidateDocument(); ok {
		t.Fatal("a response without description passed the schema check")
	}
}
