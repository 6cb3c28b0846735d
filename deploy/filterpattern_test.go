package deploy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/internal/filterpattern"
	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// accessLine is an access-log line as API Gateway writes it, from the formats
// in docs/aws-formats.md §1.
type accessLine struct {
	name string
	line string
	// call: the parser must accept it (the documented formats of HTTP calls);
	// every such line must be forwarded.
	call bool
	// forward, for lines the parser rejects: whether the pattern forwards it
	// anyway. An HTTP access line without a path is forwarded so the
	// connector can count it and say what to log; WebSocket events are not.
	forward bool
}

func documentedAccessLines() []accessLine {
	return []accessLine{
		{"product format, every value quoted", `{ "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "httpMethod": "GET", "path": "/prod/pets/42", "protocol": "HTTP/1.1", "status": "200", "responseLength": "123", "requestTime": "24/Nov/2026:10:15:30 +0000", "requestTimeEpoch": "1764000930000", "responseLatency": "12", "integrationLatency": "10", "integrationStatus": "200", "errorMessage": "-", "stage": "prod", "domainName": "api.example.com", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0" }`, true, true},
		{"product format, unquoted numbers", `{"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","httpMethod":"POST","path":"/pets","protocol":"HTTP/1.1","status":201,"responseLength":0,"requestTime":"24/Nov/2026:10:15:30 +0000","requestTimeEpoch":1764000930000,"responseLatency":35,"integrationLatency":30,"integrationStatus":201,"errorMessage":"-","stage":"prod","domainName":"api.example.com","sourceIp":"203.0.113.7","userAgent":"Mozilla/5.0"}`, true, true},
		{"product format, no integration ran (- values)", `{"requestId":"d1","httpMethod":"GET","path":"/prod/missing","protocol":"HTTP/1.1","status":"403","responseLength":"42","requestTime":"24/Nov/2026:10:15:30 +0000","requestTimeEpoch":"1764000930000","responseLatency":"1","integrationLatency":"-","integrationStatus":"-","errorMessage":"Missing Authentication Token","stage":"prod","domainName":"api.example.com","sourceIp":"203.0.113.7","userAgent":"-"}`, true, true},
		{"product format, escaped quotes in errorMessage", `{"requestId":"d2","httpMethod":"PUT","path":"/prod/pets/1","protocol":"HTTP/1.1","status":"400","responseLength":"80","requestTime":"24/Nov/2026:10:15:30 +0000","requestTimeEpoch":"1764000930000","responseLatency":"3","integrationLatency":"-","integrationStatus":"-","errorMessage":"Invalid request body: \"name\" is required","stage":"prod","domainName":"api.example.com","sourceIp":"203.0.113.7","userAgent":"curl/8.5.0"}`, true, true},
		{"AWS REST example format", `{ "requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "extendedRequestId":"Q8NnAiztIAMEV4w=", "ip": "203.0.113.7", "caller":"-", "user":"-", "requestTime":"24/Nov/2026:10:15:30 +0000", "httpMethod":"GET", "resourcePath":"/pets/{petId}", "status":"200", "protocol":"HTTP/1.1", "responseLength":"123" }`, true, true},
		{"AWS HTTP API example format", `{ "requestId":"Ab1Cd2Ef3Gh4=", "ip": "203.0.113.7", "requestTime":"24/Nov/2026:10:15:30 +0000", "httpMethod":"GET","routeKey":"GET /pets/{petId}", "status":"200","protocol":"HTTP/1.1", "responseLength":"42" }`, true, true},
		{"AWS HTTP API example format, $default route", `{"requestId":"Ab1Cd2Ef3Gh4=","ip":"203.0.113.7","requestTime":"24/Nov/2026:10:15:30 +0000","httpMethod":"DELETE","routeKey":"$default","status":"204","protocol":"HTTP/1.1","responseLength":"0"}`, false, true},
		{"AWS HTTP API example format, unquoted numbers", `{"requestId":"Ab1Cd2Ef3Gh4=","ip":"203.0.113.7","requestTime":"24/Nov/2026:10:15:30 +0000","httpMethod":"GET","routeKey":"ANY /{proxy+}","status":200,"protocol":"HTTP/1.1","responseLength":42}`, false, true}, // a greedy route is not a path: forwarded, then counted with the fix
		{"hand-written nested format", `{"requestId":"d3","httpMethod":"PATCH","path":"/pets/7","status":"200","identity":{"sourceIp":"203.0.113.7","userAgent":"curl/8.5.0"}}`, true, true},
		{"AWS WebSocket example format", `{ "requestId":"Ab1Cd2Ef3Gh4=", "ip": "203.0.113.7", "caller":"-", "user":"-", "requestTime":"24/Nov/2026:10:15:30 +0000", "eventType":"MESSAGE", "routeKey":"sendmessage", "status":"200", "connectionId":"L1ZvGdtLIAMCJKw=" }`, false, false},
	}
}

// What else lands in an account's log groups: a Lambda's own lines (text and
// JSON log format), application logs, and the other formats API Gateway can
// write (the connector counts and skips those; no need to pay for them).
var notAccessLines = []string{
	`START RequestId: 8f5c2a1e-0d3b-4a5e-9f6a-2b7c8d9e0f1a Version: $LATEST`,
	`END RequestId: 8f5c2a1e-0d3b-4a5e-9f6a-2b7c8d9e0f1a`,
	"REPORT RequestId: 8f5c2a1e-0d3b-4a5e-9f6a-2b7c8d9e0f1a\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\tMax Memory Used: 40 MB\tInit Duration: 101.12 ms",
	`INIT_START Runtime Version: provided:al2023.v30 Runtime Version ARN: arn:aws:lambda:eu-west-1::runtime:0123456789abcdef`,
	"2026-11-24T10:15:30.123Z\t8f5c2a1e-0d3b-4a5e-9f6a-2b7c8d9e0f1a\tINFO\tdelivered 12 calls, status 200",
	`panic: runtime error: invalid memory address or nil pointer dereference`,
	`{"time":"2026-11-24T10:15:30.123Z","type":"platform.start","record":{"requestId":"8f5c2a1e","version":"$LATEST"}}`,
	`{"time":"2026-11-24T10:15:30.456Z","type":"platform.report","record":{"requestId":"8f5c2a1e","metrics":{"durationMs":12.34,"billedDurationMs":13},"status":"success"}}`,
	`{"time":"2026-11-24T10:15:30Z","level":"INFO","msg":"delivered","calls":12}`,
	`{"time":"2026-11-24T10:15:30Z","level":"ERROR","msg":"node refused the batch","status":503}`,
	`{"time":"2026-11-24T10:15:30Z","level":"ERROR","msg":"node refused the batch","status":"503"}`,
	`{"time":"2026-11-24T10:15:30Z","level":"DEBUG","msg":"calling upstream","httpMethod":"POST"}`,
	`{"level":"INFO","request":{"httpMethod":"GET","status":200}}`,
	// API Gateway's CLF and CSV formats.
	`203.0.113.7 - - [24/Nov/2026:10:15:30 +0000] "GET /prod/pets/42 HTTP/1.1" 200 123 c6af9ac6-7b61-11e6-9a41-93e8deadbeef`,
	`203.0.113.7,-,-,24/Nov/2026:10:15:30 +0000,GET,/pets/{petId},HTTP/1.1,200,123,c6af9ac6`,
	`<request id="c6af9ac6"><ip>203.0.113.7</ip><httpMethod>GET</httpMethod><status>200</status></request>`,
	``,
}

// accountFilterPatterns returns the filter pattern each template's
// account-level policy carries, read from the rendered PolicyDocument.
func accountFilterPatterns(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, params := range map[string]map[string]string{
		"kinesis-ecs.yaml":    {"SubscriptionScope": "Account", "LogGroupName": ""},
		"firehose.yaml":       {"SubscriptionScope": "Account", "LogGroupName": "", "EndpointUrl": "https://c.example.com/firehose"},
		"source-account.yaml": {"CentralAccountId": "999999999999"},
	} {
		s := newStack(t, name, params)
		pol, ok := s.resources()["AccountSubscriptionPolicy"]
		if !ok {
			t.Fatalf("%s: no AccountSubscriptionPolicy with %v", name, params)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(path(pol, "Properties", "PolicyDocument").(string)), &doc); err != nil {
			t.Fatalf("%s: PolicyDocument is not JSON: %v", name, err)
		}
		fp, _ := doc["FilterPattern"].(string)
		out[name] = fp
	}
	return out
}

// The account-level pattern forwards every documented access-log line the
// connector parses as a call, and none of a Lambda's or an application's own
// lines. Evaluated with the strict reading of AWS's grammar (a wildcard only
// matches strings), so quoted and unquoted statuses both need to pass.
func TestAccountFilterPatternSelectsAccessLogs(t *testing.T) {
	t.Parallel()
	parser, err := accesslog.NewParser(accesslog.DefaultMapping())
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range accountFilterPatterns(t) {
		if strings.TrimSpace(src) == "" {
			t.Errorf("%s: the account-level policy forwards every line of every log group (empty filter pattern)", name)
			continue
		}
		p, err := filterpattern.Compile(src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, l := range documentedAccessLines() {
			_, perr := parser.Parse([]byte(l.line))
			if (perr == nil) != l.call {
				t.Errorf("fixture %q: parser accepted=%v, want %v (%v)", l.name, perr == nil, l.call, perr)
			}
			if perr == nil && !p.Match(l.line) {
				t.Errorf("%s: %s drops %s, which the connector parses: %s", name, src, l.name, l.line)
			}
			if perr != nil && p.Match(l.line) != l.forward {
				t.Errorf("%s: %s forwards %s: %v, want %v", name, src, l.name, !l.forward, l.forward)
			}
		}
		for _, line := range notAccessLines {
			if p.Match(line) {
				t.Errorf("%s: %s forwards a line that is not an access log: %s", name, src, line)
			}
			if _, perr := parser.Parse([]byte(line)); perr == nil {
				t.Errorf("fixture %q parses as an API call: it does not belong in notAccessLines", line)
			}
		}
	}
}
