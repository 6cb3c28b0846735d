package accesslog_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// TestNotJSONNamesTheFormat feeds lines of the formats users actually end up
// with (AWS's CLF/CSV/XML examples, the Serverless Framework default, Lambda's
// own log lines) and wants the reason to name the format and the fix.
func TestNotJSONNamesTheFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		line  string
		looks string // what the detail must say the line looks like
		fix   string // and what to do
	}{
		// API Gateway console's CLF example: $context.identity.sourceIp $context.identity.caller $context.identity.user
		// [$context.requestTime] "$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId
		{"API Gateway CLF", `203.0.113.7 - - [24/Nov/2026:10:15:30 +0000] "GET /pets/{petId} HTTP/1.1" 200 1234 c6af9ac6-7b61-11e6-9a41-93e8deadbeef`,
			"CLF", accesslog.FormatDocs},
		// HTTP API CLF example logs routeKey where REST logs resourcePath.
		{"HTTP API CLF", `203.0.113.7 - - [24/Nov/2026:10:15:30 +0000] "GET GET /pets HTTP/1.1" 200 12 Ab1CdEfGhIjK=`, "CLF", accesslog.FormatDocs},
		// CSV example: sourceIp,caller,user,requestTime,httpMethod,resourcePath,protocol,status,responseLength,requestId
		{"API Gateway CSV", `203.0.113.7,-,-,24/Nov/2026:10:15:30 +0000,GET,/pets,HTTP/1.1,200,1234,c6af9ac6-7b61-11e6-9a41-93e8deadbeef`,
			"CSV", accesslog.FormatDocs},
		{"API Gateway XML", `<request id="c6af9ac6"> <ip>203.0.113.7</ip> <caller>-</caller> <user>-</user> <requestTime>24/Nov/2026:10:15:30 +0000</requestTime> <httpMethod>GET</httpMethod> <resourcePath>/pets</resourcePath> <status>200</status> <protocol>HTTP/1.1</protocol> <responseLength>1234</responseLength> </request>`,
			"XML", accesslog.FormatDocs},
		// Serverless Framework's default restApi format: "requestId: $context.requestId, ip: $context.identity.sourceIp, ..." joined by ", ".
		{"Serverless Framework key: value", `requestId: c6af9ac6-7b61-11e6-9a41-93e8deadbeef, ip: 203.0.113.7, caller: -, user: -, requestTime: 24/Nov/2026:10:15:30 +0000, httpMethod: GET, resourcePath: /pets, status: 200, protocol: HTTP/1.1, responseLength: 1234`,
			`"key: value" text`, accesslog.FormatDocs},
		{"key: value with a comma in a value", `requestId: r1, ip: 203.0.113.7, userAgent: Mozilla/5.0 (X11, Linux), status: 200`, `"key: value" text`, accesslog.FormatDocs},
		{"Lambda START", `START RequestId: 8f507cfc-c7c5-4b8c-8e1a-1e2a1f7e2a3b Version: $LATEST`, "Lambda function's log line", "wrong log group"},
		{"Lambda END", `END RequestId: 8f507cfc-c7c5-4b8c-8e1a-1e2a1f7e2a3b`, "Lambda function's log line", "wrong log group"},
		{"Lambda REPORT", "REPORT RequestId: 8f507cfc-c7c5-4b8c-8e1a-1e2a1f7e2a3b\tDuration: 2.51 ms\tBilled Duration: 3 ms\tMemory Size: 128 MB\tMax Memory Used: 70 MB",
			"Lambda function's log line", "wrong log group"},
		{"Lambda application line", "2026-11-24T10:15:30.123Z\t8f507cfc-c7c5-4b8c-8e1a-1e2a1f7e2a3b\tINFO\thandling GET /pets",
			"Lambda function's application log line", "wrong log group"},
		{"API Gateway execution log", `(c6af9ac6-7b61-11e6-9a41-93e8deadbeef) Method request path: {petId=42}`, "execution log", "wrong log group"},
		{"plain text", `hello world`, "plain text", accesslog.FormatDocs},
	}
	p := newParser(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := p.Parse([]byte(tc.line))
			var pe *accesslog.ParseError
			if !errors.As(err, &pe) || pe.Reason != accesslog.ReasonNotJSON {
				t.Fatalf("err = %v, want reason %s", err, accesslog.ReasonNotJSON)
			}
			if !strings.Contains(pe.Detail, "looks like ") || !strings.Contains(pe.Detail, tc.looks) || !strings.Contains(pe.Detail, tc.fix) {
				t.Errorf("detail %q\nwant it to say it looks like %q and %q", pe.Detail, tc.looks, tc.fix)
			}
		})
	}
}

// TestHTTPAPIPaths: HTTP APIs log routeKey, which is a route, never a path.
func TestHTTPAPIPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		line     string
		wantPath string // "" = skipped with missing_path
		detail   []string
	}{
		// AWS's HTTP API example format without path, on a $default route.
		{name: "$default route, no path key",
			line:   `{"requestId":"Ab1CdEfGhIjK=","ip":"203.0.113.7","requestTime":"24/Nov/2026:10:15:30 +0000","httpMethod":"GET","routeKey":"$default","status":"200","protocol":"HTTP/1.1","responseLength":"12"}`,
			detail: []string{`routeKey "$default" is a route, not a path`, `"path":"$context.path"`, accesslog.FormatDocs}},
		{name: "greedy proxy route, no path key",
			line:   `{"requestId":"r","httpMethod":"POST","routeKey":"ANY /{proxy+}","status":"200"}`,
			detail: []string{`route template "/{proxy+}" is not a path`, `"path":"$context.path"`}},
		{name: "greedy REST resource, no path key",
			line:   `{"requestId":"r","httpMethod":"GET","resourcePath":"/api/{proxy+}","status":"200"}`,
			detail: []string{`"/api/{proxy+}" is not a path`, `"path":"$context.path"`}},
		{name: "nothing at all", line: `{"requestId":"r","httpMethod":"GET","status":"200"}`,
			detail: []string{"no route template", `"path":"$context.path"`}},
		{name: "greedy route with the real path: the path wins",
			line: `{"requestId":"r","httpMethod":"GET","routeKey":"ANY /{proxy+}","path":"/pets/42","status":"200"}`, wantPath: "/pets/42"},
		{name: "$default route with the real path",
			line: `{"requestId":"r","httpMethod":"GET","routeKey":"$default","path":"/pets/42","status":"200"}`, wantPath: "/pets/42"},
	}
	p := newParser(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := p.Parse([]byte(tc.line))
			if tc.wantPath != "" {
				if err != nil || c.Path != tc.wantPath {
					t.Fatalf("path %q, err %v; want %q", c.Path, err, tc.wantPath)
				}
				return
			}
			var pe *accesslog.ParseError
			if !errors.As(err, &pe) || pe.Reason != accesslog.ReasonMissingPath {
				t.Fatalf("got %+v, err %v; want reason %s", c, err, accesslog.ReasonMissingPath)
			}
			for _, d := range tc.detail {
				if !strings.Contains(pe.Detail, d) {
					t.Errorf("detail %q\nwant %q", pe.Detail, d)
				}
			}
		})
	}
}

func TestMissingMethodNamesTheRouteKey(t *testing.T) {
	t.Parallel()
	_, err := newParser(t).Parse([]byte(`{"requestId":"r","routeKey":"$default","path":"/p","status":"200"}`))
	var pe *accesslog.ParseError
	if !errors.As(err, &pe) || pe.Reason != accesslog.ReasonMissingMethod ||
		!strings.Contains(pe.Detail, `routeKey "$default" names none`) || !strings.Contains(pe.Detail, `"httpMethod":"$context.httpMethod"`) {
		t.Fatalf("err %v", err)
	}
}

func TestExtendedRequestID(t *testing.T) {
	t.Parallel()
	// AWS's REST example format.
	line := `{"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","extendedRequestId":"Q8NnAiztIAMEV4w=","ip":"203.0.113.7","caller":"-","user":"-","requestTime":"24/Nov/2026:10:15:30 +0000","httpMethod":"GET","resourcePath":"/pets","status":"200","protocol":"HTTP/1.1","responseLength":"12"}`
	c, err := newParser(t).Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if c.ExtendedRequestID != "Q8NnAiztIAMEV4w=" || c.RequestID != "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" {
		t.Fatalf("%+v", c)
	}
}

// TestNestedKeys: dot paths in access_log.fields read hand-written nested formats.
func TestNestedKeys(t *testing.T) {
	t.Parallel()
	m := accesslog.DefaultMapping()
	m.Host = append(m.Host, "request.host.name")
	m.Status = append(m.Status, "response.status")
	p, err := accesslog.NewParser(m)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		line string
		want accesslog.APICall
	}{
		{"default identity paths",
			`{"requestId":"r","httpMethod":"GET","path":"/p","status":"200","identity":{"sourceIp":"203.0.113.7","userAgent":"curl/8","caller":{"x":[1,{"y":2}]}}}`,
			accesslog.APICall{RequestID: "r", Method: "GET", Path: "/p", Status: 200, SourceIP: "203.0.113.7", UserAgent: "curl/8"}},
		{"three levels, numbers, escapes, nulls",
			`{"requestId":"r","httpMethod":"GET","path":"/p", "request" : { "host" : { "name" : "api.ex\u0061mple.com" }, "other": null }, "response":{"status":204}}`,
			accesslog.APICall{RequestID: "r", Method: "GET", Path: "/p", Status: 204, Host: "api.example.com"}},
		{"flat key wins by rank over the nested one",
			`{"identity":{"sourceIp":"198.51.100.1"},"sourceIp":"203.0.113.7","httpMethod":"GET","path":"/p","status":"200"}`,
			accesslog.APICall{Method: "GET", Path: "/p", Status: 200, SourceIP: "203.0.113.7"}},
		{"literal dotted key still matches",
			`{"identity.sourceIp":"203.0.113.9","httpMethod":"GET","path":"/p","status":"200"}`,
			accesslog.APICall{Method: "GET", Path: "/p", Status: 200, SourceIP: "203.0.113.9"}},
		{"dash in a nested value is no value",
			`{"identity":{"sourceIp":"-","userAgent":"-"},"httpMethod":"GET","path":"/p","status":"200"}`,
			accesslog.APICall{Method: "GET", Path: "/p", Status: 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for range 2 { // the second parse takes the learned-shape path
				got, err := p.Parse([]byte(tc.line))
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Fatalf("got  %+v\nwant %+v", got, tc.want)
				}
			}
		})
	}
	if _, err := p.Parse([]byte(`{"identity":{"sourceIp":"1.2.3.4"`)); err == nil {
		t.Fatal("truncated nested object accepted")
	}
}

func TestNestedKeyValidation(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"identity..sourceIp", ".sourceIp", "identity.", "a.b.c.d.e.f.g.h.i"} {
		m := accesslog.DefaultMapping()
		m.SourceIP = []string{k}
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), accesslog.MappingPath+".source_ip") {
			t.Errorf("key %q: err %v", k, err)
		}
	}
}

// BenchmarkParseNested parses a hand-written nested format with dot-path keys.
func BenchmarkParseNested(b *testing.B) {
	line := []byte(`{"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","httpMethod":"GET","path":"/prod/pets/42","status":"200","domainName":"abc123.execute-api.us-east-1.amazonaws.com","identity":{"sourceIp":"203.0.113.7","userAgent":"curl/8.10.1","caller":"-"},"requestTimeEpoch":"1795515330123"}`)
	p, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for range b.N {
		if c, err := p.Parse(line); err != nil || c.SourceIP == "" {
			b.Fatal(c, err)
		}
	}
}
