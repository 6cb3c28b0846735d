package devnode

import (
	"bytes"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/inventory"
)

// ownHostNotice is devnode's own warning above the shared inventory page;
// its values come from forwarded messages, so html/template escapes them.
var ownHostNotice = template.Must(template.New("own").Parse(
	`<strong>{{.OwnHost}} calls carried this node's own address as the API's host</strong> (last: {{.OwnHostSeen}}): ` +
		`the connector could not name the API's host; add "domainName":"$context.domainName" to the access-log format`))

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

// page is devnode's inventory page: the shared rendering (package
// inventory) with devnode's counters, polling /stats to redraw.
func (s *Server) page() (inventory.Page, error) {
	st := s.Stats()
	p := inventory.Page{
		Title:    "devnode API inventory",
		Subtitle: "devnode is a local stand-in for testing the connector, not a Wallarm node: the real node's API Discovery decides on its own what it lists.",
		Facts: []inventory.Fact{
			{Label: "requests", Value: st.Requests},
			{Label: "completed", Value: st.Completed},
			{Label: "pending", Value: st.Pending},
			{Label: "duplicates", Value: st.Duplicates, Warn: true},
			{Label: "missing response", Value: st.MissingResponse, Warn: true},
			{Label: "failed", Value: st.Failed, Warn: true},
		},
		Endpoints: s.Inventory(),
		Links: []inventory.Link{{Text: "inventory JSON", URL: "/inventory"}, {Text: "stats JSON", URL: "/stats"},
			{Text: "metrics", URL: "/metrics"}},
		Refresh: &inventory.Refresh{PollURL: "/stats", Key: "completed", Version: st.Completed},
	}
	for _, reason := range slices.Sorted(maps.Keys(st.Rejects)) {
		p.Facts = append(p.Facts, inventory.Fact{Label: "rejected " + reason, Value: st.Rejects[reason], Warn: true})
	}
	if st.OwnHost > 0 {
		var b bytes.Buffer
		if err := ownHostNotice.Execute(&b, st); err != nil {
			return p, fmt.Errorf("render own-host notice: %w", err)
		}
		p.Notice = template.HTML(b.String()) //nolint:gosec // html/template output, escaped above
	}
	return p, nil
}

func (s *Server) serveUI(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	p, err := s.page()
	if err == nil {
		err = inventory.WriteHTML(&buf, p)
	}
	if err != nil {
		http.Error(w, "render inventory: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page polls and redraws itself; a cached copy would show old data.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
