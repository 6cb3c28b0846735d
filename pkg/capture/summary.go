package capture

import (
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/wallarm/apigw-connector/pkg/node"
)

// Summary is the shape of the recorded traffic.
type Summary struct {
	Messages    int
	Connections int
	MaxPerConn  int // most messages seen on one connection (1: no reuse)
	Methods     map[string]int
	Targets     TargetStyle
	Headers     []HeaderShape // by name, most frequent first
	BodyKinds   map[string]int
	Replies     map[int]int // upstream reply statuses
	Pairing     Pairing
	// Settings are the apigw-connector settings that reproduce the shape, by
	// setting path; Gaps are what no setting reproduces.
	Settings map[string]string
	Gaps     []string
}

// TargetStyle describes request targets.
type TargetStyle struct {
	Style  string // "root" (every target is /), "path" (targets vary), "absolute" (absolute-form)
	Prefix string // common leading path segments of every target, "" when none
	Sample []string
}

// HeaderShape is what one header name looked like.
type HeaderShape struct {
	Name     string // as sent (first spelling seen)
	Count    int
	Pattern  string // most common value pattern: hex, uuid, decimal, status, ip, host, version, token, text, empty
	Distinct int
	Constant string // the one value, when every message had the same one (secrets never shown)
}

// Pairing says how two messages make one call.
type Pairing struct {
	Header       string // the header whose value two messages share; "" when no pairing was seen
	Pairs        int
	Unpaired     int
	FirstMethod  map[string]int
	SecondMethod map[string]int
	OnlySecond   []string // headers only the second message of a pair carries
	SameConn     int      // pairs whose halves came on one connection
	IDPattern    string
}

var (
	reHex     = regexp.MustCompile(`^[0-9a-fA-F]{8,}$`)
	reUUID    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	reDecimal = regexp.MustCompile(`^[0-9]+$`)
	reStatus  = regexp.MustCompile(`^[1-5][0-9][0-9]$`)
	reVersion = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)+([-+.][0-9A-Za-z.-]+)?$`)
	reHost    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+(:[0-9]+)?$`)
	reToken   = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

func valuePattern(v string) string {
	switch {
	case v == "":
		return "empty"
	case reStatus.MatchString(v):
		return "status"
	case reUUID.MatchString(v):
		return "uuid"
	case reDecimal.MatchString(v):
		return "decimal"
	case reHex.MatchString(v):
		return "hex"
	case net.ParseIP(v) != nil:
		return "ip"
	case reVersion.MatchString(v):
		return "version"
	case reHost.MatchString(v):
		return "host"
	case reToken.MatchString(v):
		return "token"
	}
	return "text"
}

// secretish names headers whose values are never shown.
func secretish(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"auth", "key", "token", "secret", "cookie", "password", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// Summarize describes msgs. nodeHost is the host:port the connector was
// pointed at (the capture listener), used to tell host modes apart.
func Summarize(msgs []Message, nodeHost string) Summary {
	s := Summary{Messages: len(msgs), Methods: map[string]int{}, BodyKinds: map[string]int{}, Replies: map[int]int{}, Settings: map[string]string{}}
	perConn := map[int]int{}
	type hstat struct {
		name     string
		count    int
		patterns map[string]int
		values   map[string]int
	}
	hs := map[string]*hstat{}
	var targets []string
	for i := range msgs {
		m := &msgs[i]
		perConn[m.Conn]++
		s.Methods[m.Method]++
		s.BodyKinds[m.Body.Kind]++
		if m.Reply != nil && m.Reply.Status != 0 {
			s.Replies[m.Reply.Status]++
		}
		targets = append(targets, m.Target)
		seen := map[string]bool{}
		for _, h := range m.Headers {
			k := strings.ToLower(h.Name)
			if seen[k] {
				continue
			}
			seen[k] = true
			st := hs[k]
			if st == nil {
				st = &hstat{name: h.Name, patterns: map[string]int{}, values: map[string]int{}}
				hs[k] = st
			}
			st.count++
			st.patterns[valuePattern(h.Value)]++
			st.values[h.Value]++
		}
	}
	s.Connections = len(perConn)
	for _, n := range perConn {
		s.MaxPerConn = max(s.MaxPerConn, n)
	}
	for _, st := range hs {
		sh := HeaderShape{Name: st.name, Count: st.count, Pattern: mostCommon(st.patterns), Distinct: len(st.values)}
		if len(st.values) == 1 && st.count == len(msgs) && !secretish(st.name) {
			for v := range st.values {
				sh.Constant = v
			}
		}
		s.Headers = append(s.Headers, sh)
	}
	slices.SortFunc(s.Headers, func(a, b HeaderShape) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	s.Targets = targetStyle(targets)
	s.Pairing = pairing(msgs, s.Headers)
	s.suggest(msgs, nodeHost)
	return s
}

func mostCommon(m map[string]int) string {
	best, n := "", -1
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > n {
			best, n = k, m[k]
		}
	}
	return best
}

func targetStyle(targets []string) TargetStyle {
	ts := TargetStyle{}
	if len(targets) == 0 {
		return ts
	}
	root, absolute := true, false
	for _, t := range targets {
		if t != "/" {
			root = false
		}
		if strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://") {
			absolute = true
		}
	}
	switch {
	case absolute:
		ts.Style = "absolute"
	case root:
		ts.Style = "root"
	default:
		ts.Style = "path"
	}
	uniq := slices.Compact(slices.Sorted(slices.Values(targets)))
	ts.Sample = uniq[:min(5, len(uniq))]
	// Common leading segments: only meaningful when targets vary after it.
	if ts.Style == "path" && len(uniq) > 1 {
		var common []string
		for i, t := range uniq {
			p, _, _ := strings.Cut(t, "?")
			segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
			segs = segs[:max(0, len(segs)-1)] // the last segment is the call's own
			if i == 0 {
				common = segs
				continue
			}
			n := 0
			for n < len(common) && n < len(segs) && common[n] == segs[n] {
				n++
			}
			common = common[:n]
		}
		if len(common) > 0 {
			ts.Prefix = "/" + strings.Join(common, "/")
		}
	}
	return ts
}

// pairing finds the header whose values each occur on exactly two messages.
func pairing(msgs []Message, headers []HeaderShape) Pairing {
	best := Pairing{}
	for _, h := range headers {
		if h.Count < 2 {
			continue
		}
		idx := map[string][]int{}
		for i := range msgs {
			if v, ok := msgs[i].Header(h.Name); ok && v != "" {
				idx[v] = append(idx[v], i)
			}
		}
		pairs, unpaired := 0, 0
		for _, ix := range idx {
			switch len(ix) {
			case 2:
				pairs++
			default:
				unpaired += len(ix)
			}
		}
		if pairs == 0 || pairs < best.Pairs || pairs*2 < unpaired {
			continue
		}
		p := Pairing{Header: h.Name, Pairs: pairs, Unpaired: unpaired, FirstMethod: map[string]int{}, SecondMethod: map[string]int{}, IDPattern: h.Pattern}
		onlySecond := map[string]int{}
		for _, ix := range idx {
			if len(ix) != 2 {
				continue
			}
			a, b := &msgs[ix[0]], &msgs[ix[1]]
			p.FirstMethod[a.Method]++
			p.SecondMethod[b.Method]++
			if a.Conn == b.Conn {
				p.SameConn++
			}
			for _, hb := range b.Headers {
				if _, ok := a.Header(hb.Name); !ok {
					onlySecond[hb.Name]++
				}
			}
		}
		for name, n := range onlySecond {
			if n == pairs {
				p.OnlySecond = append(p.OnlySecond, name)
			}
		}
		slices.Sort(p.OnlySecond)
		best = p
	}
	return best
}

// suggest maps the shape onto apigw-connector's node settings.
func (s *Summary) suggest(msgs []Message, nodeHost string) {
	if len(msgs) == 0 {
		return
	}
	find := func(re string) (HeaderShape, bool) {
		r := regexp.MustCompile("(?i)" + re)
		for _, h := range s.Headers {
			if r.MatchString(h.Name) {
				return h, true
			}
		}
		return HeaderShape{}, false
	}
	p := s.Pairing
	if p.Header != "" {
		s.Settings["node.headers.request_id"] = p.Header
		if m := mostCommon(p.SecondMethod); m != "" && len(p.SecondMethod) == 1 {
			s.Settings["node.response_method"] = m
		}
		for _, name := range p.OnlySecond {
			for _, h := range s.Headers {
				if h.Name == name && h.Pattern == "status" {
					s.Settings["node.headers.response_code"] = name
				}
			}
		}
		if _, ok := s.Settings["node.headers.response_code"]; !ok {
			s.Gaps = append(s.Gaps, "the response message carries its status in no header of its own (look at its body or request line): the raw profile sends it in node.headers.response_code")
		}
		if p.Unpaired > 0 {
			s.Gaps = append(s.Gaps, fmt.Sprintf("%d messages had no partner by %s", p.Unpaired, p.Header))
		}
		if p.IDPattern == "hex" {
			s.Settings["node.request_id_format"] = "hex"
		}
		switch p.IDPattern {
		case "hex", "uuid", "decimal", "token":
			s.Gaps = append(s.Gaps, fmt.Sprintf("request ids look like %s values: the connector sends the id from the access log with a hash suffix; compare with a captured id", p.IDPattern))
		}
	} else {
		s.Gaps = append(s.Gaps, "no header pairs two messages into one call: the connector always sends two messages per call")
	}
	if h, ok := find(`conn(ector)?-?type`); ok {
		s.Settings["node.headers.connector_type"] = h.Name
		if h.Constant != "" {
			s.Settings["node.connector_type"] = h.Constant
		}
	}
	if h, ok := find(`conn(ector)?-?version`); ok {
		s.Settings["node.headers.connector_version"] = h.Name
		if h.Constant != "" {
			s.Settings["node.connector_version"] = h.Constant
		}
	}
	if h, ok := find(`(forwarded|orig(inal)?)-?host`); ok {
		s.Settings["node.headers.forwarded_host"] = h.Name
	}
	if h, ok := find(`forwarded-?for|real-?ip|client-?ip`); ok && (h.Pattern == "ip" || h.Pattern == "host") {
		s.Settings["node.headers.forwarded_for"] = h.Name
	}
	if host, ok := find(`^host$`); ok {
		nodeName, _, _ := net.SplitHostPort(nodeHost)
		if host.Constant != "" && (host.Constant == nodeHost || host.Constant == nodeName) {
			s.Settings["node.host_mode"] = "node"
		} else if host.Distinct > 0 {
			s.Settings["node.host_mode"] = "original"
		}
	}
	if s.Targets.Style == "path" && s.Targets.Prefix != "" {
		s.Settings["node.path_prefix"] = s.Targets.Prefix
	}
	if s.Targets.Style == "root" {
		s.Gaps = append(s.Gaps, "every message goes to / (the call's path travels elsewhere, e.g. in a body): the raw profile puts the call's path in the request line")
	}
	bodies := false
	for kind, n := range s.BodyKinds {
		if kind != "empty" {
			bodies = true
			s.Gaps = append(s.Gaps, fmt.Sprintf("%d messages carry a %s body: the raw profile sends no body", n, kind))
		}
	}
	// raw is suggested only for a shape it can reproduce: paired body-less
	// messages to the call's path, the status in a header of its own.
	_, status := s.Settings["node.headers.response_code"]
	if p.Header != "" && status && s.Targets.Style == "path" && !bodies {
		s.Settings["node.profile"] = node.DefaultProfile
	} else {
		s.Gaps = append(s.Gaps, fmt.Sprintf("no node.profile reproduces this shape (built in: %s)", strings.Join(node.ProfileNames(), ", ")))
	}
	slices.Sort(s.Gaps)
}

// Write prints the summary for a person, then the settings as YAML.
func (s Summary) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "messages: %d on %d connections (at most %d on one)\n", s.Messages, s.Connections, s.MaxPerConn)
	fmt.Fprintf(&b, "methods: %s\n", counts(s.Methods))
	fmt.Fprintf(&b, "targets: %s", s.Targets.Style)
	if s.Targets.Prefix != "" {
		fmt.Fprintf(&b, ", common prefix %s (with few distinct APIs captured it may include their own common path)", s.Targets.Prefix)
	}
	if len(s.Targets.Sample) > 0 {
		fmt.Fprintf(&b, " (e.g. %s)", strings.Join(s.Targets.Sample, ", "))
	}
	b.WriteString("\nheaders:\n")
	for _, h := range s.Headers {
		fmt.Fprintf(&b, "  %-32s on %d, %s", h.Name, h.Count, h.Pattern)
		switch {
		case h.Constant != "":
			fmt.Fprintf(&b, ", always %q", h.Constant)
		case secretish(h.Name):
			b.WriteString(", values not shown")
		default:
			fmt.Fprintf(&b, ", %d distinct", h.Distinct)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "bodies: %s\n", counts(s.BodyKinds))
	if len(s.Replies) > 0 {
		r := map[string]int{}
		for k, v := range s.Replies {
			r[fmt.Sprint(k)] = v
		}
		fmt.Fprintf(&b, "upstream replies: %s\n", counts(r))
	}
	if p := s.Pairing; p.Header != "" {
		fmt.Fprintf(&b, "pairing: %d pairs by %s (%s ids), first %s, second %s, %d on one connection",
			p.Pairs, p.Header, p.IDPattern, counts(p.FirstMethod), counts(p.SecondMethod), p.SameConn)
		if len(p.OnlySecond) > 0 {
			fmt.Fprintf(&b, "; only the second carries %s", strings.Join(p.OnlySecond, ", "))
		}
		b.WriteString("\n")
	} else {
		b.WriteString("pairing: none seen\n")
	}
	if len(s.Settings) > 0 {
		b.WriteString("\n# apigw-connector settings that reproduce this shape:\n")
		b.WriteString(settingsYAML(s.Settings))
	}
	if len(s.Gaps) > 0 {
		b.WriteString("\n# not reproduced by a setting:\n")
		for _, g := range s.Gaps {
			fmt.Fprintf(&b, "#  - %s\n", g)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// settingsYAML renders dotted settings under node: as YAML.
func settingsYAML(set map[string]string) string {
	var b strings.Builder
	b.WriteString("node:\n")
	var headers []string
	for _, k := range slices.Sorted(maps.Keys(set)) {
		rest := strings.TrimPrefix(k, "node.")
		if h, ok := strings.CutPrefix(rest, "headers."); ok {
			headers = append(headers, fmt.Sprintf("    %s: %s\n", h, yamlScalar(set[k])))
			continue
		}
		fmt.Fprintf(&b, "  %s: %s\n", rest, yamlScalar(set[k]))
	}
	if len(headers) > 0 {
		b.WriteString("  headers:\n")
		for _, h := range headers {
			b.WriteString(h)
		}
	}
	return b.String()
}

func yamlScalar(v string) string {
	if v == "" || strings.ContainsAny(v, ":#{}[],&*!|>'\"%@`") || strings.TrimSpace(v) != v {
		return fmt.Sprintf("%q", v)
	}
	return v
}
