package devnode

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// uiTemplate is deliberately plain: a table a human can read during a demo. Every
// value comes from forwarded messages, so html/template escapes it all.
var uiTemplate = template.Must(template.New("ui").Funcs(template.FuncMap{
	"statuses": formatStatuses,
	"ts":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>devnode inventory</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:left}</style>
</head><body>
<h1>devnode API inventory</h1>
<p>requests {{.Stats.Requests}} &middot; completed {{.Stats.Completed}} &middot; pending {{.Stats.Pending}} &middot; duplicates {{.Stats.Duplicates}} &middot; missing response {{.Stats.MissingResponse}} &middot; failed {{.Stats.Failed}}</p>
{{with .Stats.Rejects}}<p>rejected:{{range $reason, $n := .}} {{$reason}}={{$n}}{{end}}</p>{{end}}
{{if .Stats.OwnHost}}<p><strong>{{.Stats.OwnHost}} calls carried this node's own address as the API's host</strong> (last: {{.Stats.OwnHostSeen}}): the connector could not name the API's host; add "domainName":"$context.domainName" to the access-log format</p>{{end}}
<table>
<tr><th>Host</th><th>Method</th><th>Path</th><th>Calls</th><th>Statuses</th><th>First seen</th><th>Last seen</th></tr>
{{range .Endpoints}}<tr><td>{{.Host}}</td><td>{{.Method}}</td><td>{{.Path}}</td><td>{{.Calls}}</td><td>{{statuses .Statuses}}</td><td>{{ts .FirstSeen}}</td><td>{{ts .LastSeen}}</td></tr>
{{else}}<tr><td colspan="7">no completed calls yet</td></tr>
{{end}}</table>
<p><a href="/inventory">inventory JSON</a> &middot; <a href="/stats">stats JSON</a> &middot; <a href="/metrics">metrics</a></p>
</body></html>
`))

func formatStatuses(m map[int]int64) string {
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var b strings.Builder
	for i, c := range codes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(c))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(m[c], 10))
	}
	return b.String()
}

func (s *Server) serveUI(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	err := uiTemplate.Execute(&buf, struct {
		Stats     Stats
		Endpoints []Endpoint
	}{s.Stats(), s.Inventory()})
	if err != nil {
		http.Error(w, "render inventory: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
