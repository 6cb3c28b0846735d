package accesslog_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/traffic"
)

func newParser(t testing.TB) *accesslog.Parser {
	t.Helper()
	p, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const documented = `{ "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "httpMethod": "get", "path": "/prod/pets/42",
  "protocol": "HTTP/1.1", "status": "200", "responseLength": "1234", "requestTime": "24/Nov/2026:10:15:30 +0000",
  "requestTimeEpoch": "1795515330123", "responseLatency": "57", "integrationLatency": "48.5",
  "integrationStatus": "200", "errorMessage": "-", "stage": "prod", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
  "sourceIp": "203.0.113.7", "userAgent": "curl/8.10.1" }`

func TestParseDocumentedFormat(t *testing.T) {
	t.Parallel()
	got, err := newParser(t).Parse([]byte(documented))
	if err != nil {
		t.Fatal(err)
	}
	want := accesslog.APICall{
		RequestID: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", Method: "GET", Host: "abc123.execute-api.us-east-1.amazonaws.com",
		Path: "/prod/pets/42", Protocol: "HTTP/1.1", Status: 200,
		ResponseLatency: 57 * time.Millisecond, HasResponseLatency: true,
		IntegrationLatency: 48*time.Millisecond + 500*time.Microsecond, HasIntegrationLatency: true,
		IntegrationStatus: 200, ResponseLength: 1234, HasResponseLength: true,
		RequestTime: time.Date(2026, 11, 24, 10, 15, 30, 123e6, time.UTC),
		SourceIP:    "203.0.113.7", UserAgent: "curl/8.10.1", Stage: "prod",
	}
	if got != want {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// TestParseCases covers the odd inputs, each changing one thing.
func TestParseCases(t *testing.T) {
	t.Parallel()
	base := `"requestId":"r1","httpMethod":"GET","path":"/p","status":"200"`
	tests := []struct {
		name   string
		line   string
		check  func(t *testing.T, c accesslog.APICall)
		reason string
		errSub string
	}{
		{name: "numbers instead of strings",
			line: `{"requestId":"r","httpMethod":"POST","path":"/p","status":201,"responseLength":0,"responseLatency":12,"integrationLatency":3,"integrationStatus":201,"requestTimeEpoch":1795515330000}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Status != 201 || !c.HasResponseLength || c.ResponseLength != 0 || c.ResponseLatency != 12*time.Millisecond ||
					c.IntegrationLatency != 3*time.Millisecond || c.IntegrationStatus != 201 || c.RequestTime.UnixMilli() != 1795515330000 {
					t.Errorf("%+v", c)
				}
			}},
		{name: "dash means no value",
			line: `{` + base + `,"integrationLatency":"-","integrationStatus":"-","responseLength":"-","userAgent":"-","errorMessage":"-","sourceIp":"-","requestTimeEpoch":"-","requestTime":"-"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.HasIntegrationLatency || c.IntegrationStatus != 0 || c.HasResponseLength || c.UserAgent != "" ||
					c.ErrorMessage != "" || c.SourceIP != "" || !c.RequestTime.IsZero() {
					t.Errorf("%+v", c)
				}
			}},
		{name: "escaped errorMessage",
			line: `{` + base + `,"errorMessage":"Invalid request body: \"email\" is required \\ \u00e9\n"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.ErrorMessage != "Invalid request body: \"email\" is required \\ é\n" {
					t.Errorf("error message %q", c.ErrorMessage)
				}
			}},
		{name: "AWS example REST format: ip, caller, user, resourcePath, no path",
			line: `{"requestId":"r","ip":"198.51.100.1","caller":"-","user":"-","requestTime":"24/Nov/2026:10:15:30 +0100","httpMethod":"DELETE","resourcePath":"/pets/{petId}","status":"204","protocol":"HTTP/1.1","responseLength":"0"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.SourceIP != "198.51.100.1" || c.Path != "/pets/{petId}" || c.RouteTemplate != "/pets/{petId}" || c.Method != "DELETE" ||
					!c.RequestTime.Equal(time.Date(2026, 11, 24, 9, 15, 30, 0, time.UTC)) {
					t.Errorf("%+v", c)
				}
			}},
		{name: "AWS example HTTP API format: routeKey gives method and template",
			line: `{"requestId":"r","ip":"198.51.100.1","requestTime":"24/Nov/2026:10:15:30 +0000","routeKey":"PATCH /orders/{orderId}","path":"/orders/77","status":"200","protocol":"HTTP/1.1","responseLength":"10"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Method != "PATCH" || c.RouteTemplate != "/orders/{orderId}" || c.Path != "/orders/77" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "httpMethod wins over routeKey method",
			line: `{` + base + `,"routeKey":"ANY /{proxy+}"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Method != "GET" || c.RouteTemplate != "/{proxy+}" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "$default route key has no template",
			line: `{` + base + `,"routeKey":"$default"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.RouteTemplate != "" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "resourcePath wins over routeKey template",
			line: `{` + base + `,"routeKey":"GET /a/{x}","resourcePath":"/b/{y}"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.RouteTemplate != "/b/{y}" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "documented key wins over alias in any order",
			line: `{"method":"PUT","ip":"192.0.2.9",` + base + `,"sourceIp":"192.0.2.1"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Method != "GET" || c.SourceIP != "192.0.2.1" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "alias used when documented key is a dash",
			line: `{"requestId":"r","httpMethod":"-","method":"post","path":"/p","status":"200"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Method != "POST" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "IPv6 source", line: `{` + base + `,"sourceIp":"2001:db8::1"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.SourceIP != "2001:db8::1" {
					t.Errorf("%q", c.SourceIP)
				}
			}},
		{name: "IPv4 with port", line: `{` + base + `,"sourceIp":"203.0.113.7:54321"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.SourceIP != "203.0.113.7" {
					t.Errorf("%q", c.SourceIP)
				}
			}},
		{name: "bracketed IPv6 with port", line: `{` + base + `,"sourceIp":"[2001:db8::1]:443"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.SourceIP != "2001:db8::1" {
					t.Errorf("%q", c.SourceIP)
				}
			}},
		{name: "IP with spaces and forwarded list", line: `{` + base + `,"sourceIp":"  198.51.100.4 , 10.0.0.1 "}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.SourceIP != "198.51.100.4" {
					t.Errorf("%q", c.SourceIP)
				}
			}},
		{name: "unknown keys and nested values ignored", line: `{"x":{"status":"999","a":[1,{"b":"\"}"}]},` + base + `,"y":[],"z":true,"n":null}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Status != 200 {
					t.Errorf("%+v", c)
				}
			}},
		{name: "BOM and whitespace", line: "\xEF\xBB\xBF \t{ " + base + " }\r\n",
			check: func(t *testing.T, c accesslog.APICall) {
				if c.RequestID != "r1" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "escaped key", line: `{"requestId":"r","http\u004dethod":"GET","path":"/p","status":"200"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Method != "GET" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "epoch preferred over CLF time", line: `{` + base + `,"requestTime":"01/Jan/2020:00:00:00 +0000","requestTimeEpoch":"1795515330123"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.RequestTime.UnixMilli() != 1795515330123 {
					t.Errorf("%v", c.RequestTime)
				}
			}},
		{name: "apiId and custom domain host", line: `{` + base + `,"apiId":"abc123","domainName":"api.example.com"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.APIID != "abc123" || c.Host != "api.example.com" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "unusual method upper-cased", line: `{"httpMethod":"propfind","path":"/p","status":"207"}`,
			check: func(t *testing.T, c accesslog.APICall) {
				if c.Method != "PROPFIND" {
					t.Errorf("%q", c.Method)
				}
			}},

		{name: "CLF line", line: `203.0.113.7 - - [24/Nov/2026:10:15:30 +0000] "GET /prod/pets HTTP/1.1" 200 1234 c6af9ac6`, reason: accesslog.ReasonNotJSON, errSub: "CLF"},
		{name: "CSV line", line: `c6af9ac6,203.0.113.7,GET,/pets,200`, reason: accesslog.ReasonNotJSON, errSub: "CSV"},
		{name: "XML line", line: `<request id="c6af9ac6"><method>GET</method></request>`, reason: accesslog.ReasonNotJSON, errSub: "XML"},
		{name: "empty line", line: "  ", reason: accesslog.ReasonNotJSON},
		{name: "truncated JSON", line: `{"httpMethod":"GET","path":"/p`, reason: accesslog.ReasonNotJSON, errSub: "malformed"},
		{name: "trailing data", line: `{` + base + `} x`, reason: accesslog.ReasonNotJSON},
		{name: "JSON array", line: `[1,2]`, reason: accesslog.ReasonNotJSON},
		{name: "websocket eventType", line: `{"requestId":"r","eventType":"MESSAGE","routeKey":"sendmessage","status":"200","connectionId":"L0SM9cOFvHcCIhw="}`, reason: accesslog.ReasonWebSocket},
		{name: "websocket connectionId only", line: `{` + base + `,"connectionId":"L0SM9cOFvHcCIhw="}`, reason: accesslog.ReasonWebSocket},
		{name: "status 99", line: `{"httpMethod":"GET","path":"/p","status":"99"}`, reason: accesslog.ReasonBadStatus},
		{name: "status 600", line: `{"httpMethod":"GET","path":"/p","status":600}`, reason: accesslog.ReasonBadStatus},
		{name: "status abc", line: `{"httpMethod":"GET","path":"/p","status":"abc"}`, reason: accesslog.ReasonBadStatus, errSub: "abc"},
		{name: "status fractional", line: `{"httpMethod":"GET","path":"/p","status":200.5}`, reason: accesslog.ReasonBadStatus},
		{name: "status true", line: `{"httpMethod":"GET","path":"/p","status":true}`, reason: accesslog.ReasonBadStatus},
		{name: "status dash", line: `{"httpMethod":"GET","path":"/p","status":"-"}`, reason: accesslog.ReasonMissingStatus},
		{name: "status null", line: `{"httpMethod":"GET","path":"/p","status":null}`, reason: accesslog.ReasonMissingStatus},
		{name: "missing status", line: `{"httpMethod":"GET","path":"/p"}`, reason: accesslog.ReasonMissingStatus},
		{name: "missing method", line: `{"path":"/p","status":"200"}`, reason: accesslog.ReasonMissingMethod, errSub: "httpMethod"},
		{name: "route key without method", line: `{"routeKey":"$default","path":"/p","status":"200"}`, reason: accesslog.ReasonMissingMethod},
		{name: "method not a token", line: `{"httpMethod":"GE T","path":"/p","status":"200"}`, reason: accesslog.ReasonMissingMethod, errSub: "not an HTTP method"},
		{name: "method non-ASCII", line: "{\"httpMethod\":\"G\xb8\",\"path\":\"/p\",\"status\":\"200\"}", reason: accesslog.ReasonMissingMethod},
		{name: "missing path", line: `{"httpMethod":"GET","status":"200"}`, reason: accesslog.ReasonMissingPath},
		{name: "empty path", line: `{"httpMethod":"GET","path":"","status":"200"}`, reason: accesslog.ReasonMissingPath},
	}
	p := newParser(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := p.Parse([]byte(tc.line))
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			var pe *accesslog.ParseError
			if !errors.As(err, &pe) || pe.Reason != tc.reason {
				t.Fatalf("err = %v, want reason %q", err, tc.reason)
			}
			if !errors.Is(err, accesslog.ErrNotAPICall) || !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("error %q: want ErrNotAPICall and %q", err, tc.errSub)
			}
			if tc.reason == accesslog.ReasonNotJSON && strings.Contains(tc.errSub, "S") && !strings.Contains(err.Error(), "JSON") {
				t.Errorf("error %q should say which format to configure", err)
			}
		})
	}
}

// TestParseGeneratedTraffic parses generated lines and compares every field
// with the call that produced it.
func TestParseGeneratedTraffic(t *testing.T) {
	t.Parallel()
	for _, routeKeys := range []bool{false, true} {
		o := traffic.DefaultOptions()
		o.ErrorShare, o.RouteKeys, o.APIs = 0.3, routeKeys, 6
		g := traffic.New(o)
		p := newParser(t)
		for range 2000 {
			c := g.Next()
			got, err := p.Parse(g.AppendLine(nil, &c))
			if err != nil {
				t.Fatal(err)
			}
			want := accesslog.APICall{
				RequestID: c.RequestID, Method: c.Method, Host: c.Host, Path: c.Path, Protocol: c.Protocol, Status: c.Status,
				ResponseLatency: time.Duration(c.ResponseLatency) * time.Millisecond, HasResponseLatency: true,
				IntegrationStatus: c.IntegrationStatus, ResponseLength: c.ResponseLength, HasResponseLength: true,
				RequestTime: c.Time, SourceIP: c.SourceIP, UserAgent: c.UserAgent, Stage: c.Stage, ErrorMessage: c.ErrorMessage,
			}
			if c.IntegrationLatency >= 0 {
				want.IntegrationLatency, want.HasIntegrationLatency = time.Duration(c.IntegrationLatency)*time.Millisecond, true
			}
			if routeKeys {
				want.RouteTemplate = c.Endpoint.PathTemplate
			}
			if got != want {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		}
	}
}

func TestParseDoesNotAliasInput(t *testing.T) {
	t.Parallel()
	line := []byte(documented)
	c, err := newParser(t).Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	for i := range line {
		line[i] = 'x'
	}
	if c.Path != "/prod/pets/42" || c.RequestID != "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" {
		t.Fatalf("result changed with the input: %+v", c)
	}
}

func TestMappingValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(m *accesslog.Mapping)
		errSub string
	}{
		{"default", func(*accesslog.Mapping) {}, ""},
		{"no method keys", func(m *accesslog.Mapping) { m.Method = nil }, "access_log.fields.method must list"},
		{"no status keys", func(m *accesslog.Mapping) { m.Status = nil }, "access_log.fields.status"},
		{"no path keys at all", func(m *accesslog.Mapping) { m.Path, m.RouteTemplate, m.RouteKey = nil, nil, nil }, "access_log.fields.path"},
		{"path from route key only", func(m *accesslog.Mapping) { m.Path, m.RouteTemplate = nil, nil }, ""},
		{"empty key", func(m *accesslog.Mapping) { m.Host = append(m.Host, " ") }, "empty key"},
		{"key in two fields", func(m *accesslog.Mapping) { m.Path = append(m.Path, "resourcePath") }, `"resourcePath" is listed in both`},
		{"key twice", func(m *accesslog.Mapping) { m.Stage = []string{"stage", "stage"} }, "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := accesslog.DefaultMapping()
			tc.mutate(&m)
			err := m.Validate()
			if tc.errSub == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := accesslog.NewParser(m); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Fatalf("err = %v, want %q", err, tc.errSub)
			}
			if _, err := accesslog.NewParser(m); err == nil {
				t.Fatal("NewParser accepted an invalid mapping")
			}
		})
	}
}

func TestCustomMapping(t *testing.T) {
	t.Parallel()
	m := accesslog.DefaultMapping()
	m.Method = []string{"verb"}
	m.Status = []string{"code"}
	p, err := accesslog.NewParser(m)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Parse([]byte(`{"verb":"get","path":"/x","code":404,"httpMethod":"POST"}`))
	if err != nil || c.Method != "GET" || c.Status != 404 {
		t.Fatalf("%+v %v", c, err)
	}
}

// TestParseConcurrentMixedFormats parses lines of two formats from several
// goroutines: the parser's learned key order must never mislead it.
func TestParseConcurrentMixedFormats(t *testing.T) {
	t.Parallel()
	p := newParser(t)
	lines := []struct {
		line   string
		method string
		status int
		path   string
	}{
		{`{"requestId":"a","httpMethod":"GET","path":"/a","status":"200"}`, "GET", 200, "/a"},
		{`{"requestId":"b","ip":"192.0.2.1","httpMethod":"PUT","resourcePath":"/b/{id}","status":"201"}`, "PUT", 201, "/b/{id}"},
		{`{"requestId":"c","httpMethod":"DELETE","path":"/c","statusCode":"404"}`, "DELETE", 404, "/c"},
		{`{"requestId":"d","httpMethod":"POST","pat":"/x","path":"/d","status":"500"}`, "POST", 500, "/d"},
		{`{"requestId":"e","http\u004dethod":"PATCH","path":"/e","status":"202"}`, "PATCH", 202, "/e"},
	}
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for k := range 2000 {
				l := lines[(w+k*(w+1))%len(lines)]
				c, err := p.Parse([]byte(l.line))
				if err != nil || c.Method != l.method || c.Status != l.status || c.Path != l.path {
					t.Errorf("%s: %+v %v", l.line, c, err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
