package traffic

import (
	"strings"
	"time"
)

// Manifest is what `apigw-connector generate --manifest` writes: the
// generated endpoints and the request ids of every call written, so a test
// or the demo can check that nothing was lost.
type Manifest struct {
	Seed       int64              `json:"seed"`
	Format     string             `json:"format"`
	Stream     string             `json:"stream,omitempty"`
	Started    time.Time          `json:"started"`
	Finished   time.Time          `json:"finished"`
	Calls      int64              `json:"calls"`
	Records    int64              `json:"records"`
	Endpoints  []ManifestEndpoint `json:"endpoints"`
	RequestIDs []string           `json:"request_ids"`
	// RequestTimes are the calls' times (epoch ms), in RequestIDs' order.
	RequestTimes []int64 `json:"request_times_ms"`
}

// ManifestEndpoint is one generated API operation.
type ManifestEndpoint struct {
	Method       string `json:"method"`
	Host         string `json:"host"`
	PathTemplate string `json:"path_template"` // e.g. /users/{userId}
	// CalledTemplate is the template as $context.path carries it (REST APIs on
	// the default endpoint prefix the stage).
	CalledTemplate string `json:"called_template"`
	APIID          string `json:"api_id"`
	APIKind        string `json:"api_kind"`
	Stage          string `json:"stage"`
	Calls          int64  `json:"calls"`
}

// Key names the endpoint as "METHOD host/called/template".
func (e ManifestEndpoint) Key() string { return e.Method + " " + e.Host + e.CalledTemplate }

// MatchesTemplate reports whether a concrete path fits a template whose
// {param} segments stand for one non-empty segment each. Inventories fold
// only some ids (numbers, UUIDs, hex), so a {param} matches any segment.
func MatchesTemplate(path, tmpl string) bool {
	ps, ts := strings.Split(path, "/"), strings.Split(tmpl, "/")
	if len(ps) != len(ts) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if ps[i] != ts[i] {
			return false
		}
	}
	return true
}
