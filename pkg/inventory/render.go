package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints endpoints as an aligned table, grouped by host.
func WriteTable(w io.Writer, eps []Endpoint) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tMETHOD\tPATH\tCALLS\tSTATUSES\tFIRST SEEN\tLAST SEEN")
	for _, e := range eps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Host, e.Method, e.Path, e.Calls, statuses(e.Statuses),
			e.FirstSeen.Format(time.RFC3339), e.LastSeen.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write inventory table: %w", err)
	}
	return nil
}

func statuses(m map[int]int64) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d×%d", c, m[c]))
	}
	return strings.Join(parts, " ")
}

// WriteJSON prints endpoints as a JSON array.
func WriteJSON(w io.Writer, eps []Endpoint) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if eps == nil {
		eps = []Endpoint{}
	}
	if err := enc.Encode(eps); err != nil {
		return fmt.Errorf("write inventory JSON: %w", err)
	}
	return nil
}

// OpenAPI 3.1 document shapes: only what the inventory fills.
type (
	openAPIDoc struct {
		OpenAPI string                        `json:"openapi"`
		Info    openAPIInfo                   `json:"info"`
		Servers []openAPIServer               `json:"servers,omitempty"`
		Paths   map[string]map[string]*opItem `json:"paths"`
	}
	openAPIInfo struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description,omitempty"`
	}
	openAPIServer struct {
		URL string `json:"url"`
	}
	opItem struct {
		OperationID string               `json:"operationId"`
		Servers     []openAPIServer      `json:"servers,omitempty"`
		Parameters  []openAPIParam       `json:"parameters,omitempty"`
		Responses   map[string]*response `json:"responses"`
		Calls       int64                `json:"x-apigw-connector-calls"`
		FirstSeen   string               `json:"x-apigw-connector-first-seen"`
		LastSeen    string               `json:"x-apigw-connector-last-seen"`
	}
	openAPIParam struct {
		Name     string            `json:"name"`
		In       string            `json:"in"`
		Required bool              `json:"required"`
		Schema   map[string]string `json:"schema"`
	}
	response struct {
		Description string `json:"description"`
		Calls       int64  `json:"x-apigw-connector-calls"`
	}
)

// WriteOpenAPI prints endpoints as an OpenAPI 3.1 document: one path per
// template (each {id} segment a named path parameter), one operation per
// method with the observed statuses as responses, hosts as servers, and call
// counts as x-apigw-connector-calls.
func WriteOpenAPI(w io.Writer, eps []Endpoint, title string) error {
	doc := openAPIDoc{OpenAPI: "3.1.0", Paths: map[string]map[string]*opItem{},
		Info: openAPIInfo{Title: title, Version: time.Now().UTC().Format("2006-01-02"),
			Description: "API inventory observed in API Gateway access logs by apigw-connector."}}
	hosts := map[string]bool{}
	for _, e := range eps {
		hosts[e.Host] = true
	}
	multiHost := len(hosts) > 1
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		doc.Servers = append(doc.Servers, openAPIServer{URL: serverURL(h)})
	}
	opIDs := map[string]int{}
	for _, e := range eps {
		path, params := templatePath(e.Path)
		method := strings.ToLower(e.Method)
		if !openAPIMethod(method) {
			continue // OpenAPI has no field for other methods
		}
		if doc.Paths[path] == nil {
			doc.Paths[path] = map[string]*opItem{}
		}
		op := doc.Paths[path][method]
		if op == nil {
			id := operationID(method, path)
			opIDs[id]++
			if n := opIDs[id]; n > 1 {
				id += "_" + strconv.Itoa(n)
			}
			op = &opItem{OperationID: id, Responses: map[string]*response{}, Parameters: params,
				FirstSeen: e.FirstSeen.Format(time.RFC3339), LastSeen: e.LastSeen.Format(time.RFC3339)}
			doc.Paths[path][method] = op
		}
		if multiHost {
			// The same template on several hosts: say which serve it.
			op.Servers = append(op.Servers, openAPIServer{URL: serverURL(e.Host)})
		}
		op.Calls += e.Calls
		for code, n := range e.Statuses {
			k := strconv.Itoa(code)
			if op.Responses[k] == nil {
				desc := http.StatusText(code)
				if desc == "" {
					desc = "Status " + k
				}
				op.Responses[k] = &response{Description: desc}
			}
			op.Responses[k].Calls += n
		}
		if len(op.Responses) == 0 {
			op.Responses["default"] = &response{Description: "No status observed"}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write OpenAPI document: %w", err)
	}
	return nil
}

func serverURL(host string) string {
	if host == "" {
		return "/"
	}
	return "https://" + host
}

func openAPIMethod(m string) bool {
	switch m {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

// templatePath names the i-th {id} segment {id}, {id2}, ... (OpenAPI needs
// unique parameter names per path) and returns the path parameters.
func templatePath(p string) (string, []openAPIParam) {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	segs := strings.Split(p, "/")
	var params []openAPIParam
	for i, s := range segs {
		if s != IDSegment && !(strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2) {
			continue
		}
		name := strings.Trim(s, "{}+")
		if s == IDSegment && len(params) > 0 {
			name = "id" + strconv.Itoa(len(params)+1)
		}
		for slices.ContainsFunc(params, func(q openAPIParam) bool { return q.Name == name }) {
			name += "_"
		}
		segs[i] = "{" + name + "}"
		params = append(params, openAPIParam{Name: name, In: "path", Required: true, Schema: map[string]string{"type": "string"}})
	}
	return strings.Join(segs, "/"), params
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(method)
	for _, r := range path {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
