package accesslog_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// FuzzParse checks that no line panics, failures carry a known reason, and
// every accepted call has what a call needs.
func FuzzParse(f *testing.F) {
	f.Add([]byte(documented))
	f.Add([]byte(`{"routeKey":"GET /a","status":200}`))
	f.Add([]byte(`{"httpMethod":"GET","path":"/","status":"200","sourceIp":"[::1"}`))
	f.Add([]byte(`{"httpMethod":"GET","path":"/","status":"200","requestTime":"99/Xyz/2026:99:99:99 +9999"}`))
	f.Add([]byte(`{"httpMethod":"GET","path":"\u","status":"200"}`))
	f.Add([]byte(`{"a":[[[[[[[[[[]]]]]]]]]]}`))
	f.Add([]byte(`{"identity":{"sourceIp":"1.2.3.4","userAgent":{"x":[1]}},"httpMethod":"GET","path":"/","status":"200"}`))
	f.Add([]byte(`requestId: r, ip: 1.2.3.4, httpMethod: GET, status: 200`))
	p := newParser(f)
	reasons := map[string]bool{accesslog.ReasonNotJSON: true, accesslog.ReasonMissingMethod: true, accesslog.ReasonMissingPath: true,
		accesslog.ReasonMissingStatus: true, accesslog.ReasonBadStatus: true, accesslog.ReasonWebSocket: true}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := p.Parse(line)
		if err != nil {
			var pe *accesslog.ParseError
			if !errors.As(err, &pe) || !reasons[pe.Reason] || !errors.Is(err, accesslog.ErrNotAPICall) {
				t.Fatalf("bad error %v (%T)", err, err)
			}
			return
		}
		if c.Status < 100 || c.Status > 599 {
			t.Fatalf("status %d accepted", c.Status)
		}
		if c.Method == "" || c.Method != strings.ToUpper(c.Method) {
			t.Fatalf("method %q", c.Method)
		}
		if c.Path == "" {
			t.Fatal("empty path accepted")
		}
		if strings.ContainsAny(c.SourceIP, " ,") {
			t.Fatalf("source IP %q not bare", c.SourceIP)
		}
		if c.ResponseLatency < 0 || c.IntegrationLatency < 0 || c.ResponseLength < 0 {
			t.Fatalf("negative values: %+v", c)
		}
	})
}
