package inventory

import (
	"bytes"
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Page is an HTML inventory page: devnode's live one and the inventory
// command's single file share it. Everything in it but Notice is escaped, as
// hosts and paths come from whoever sent the traffic.
type Page struct {
	Title    string
	Subtitle string
	Facts    []Fact
	// Notice is HTML the caller rendered with its own html/template (so
	// escaped there), shown above the inventory; never raw input.
	Notice    template.HTML
	Endpoints []Endpoint
	Links     []Link
	// Refresh, when set, makes the page poll and redraw while traffic flows.
	Refresh *Refresh
}

// Fact is one figure of the summary line.
type Fact struct {
	Label string
	Value int64
	Warn  bool // non-zero is bad news: shown highlighted
}

// Link is a link in the page's footer.
type Link struct{ Text, URL string }

// Refresh names a JSON document the page polls (same origin) and the number
// in it that changes with traffic; the page redraws itself when it does,
// polling slower while it does not.
type Refresh struct {
	PollURL string
	Key     string
	Version int64 // the value the page was rendered with
}

//go:embed html.tmpl
var pageSource string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"plural": Plural,
	"ts":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"iso":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"int64":  func(n int) int64 { return int64(n) },
	"classLabel": func(c string) string {
		if c == "sx" {
			return "other"
		}
		return strings.TrimPrefix(c, "s") + "xx"
	},
}).Parse(pageSource))

// WriteHTML renders p as one self-contained page: inline CSS, SVG and (with
// Refresh) JS, no external assets, so it works offline and from a file.
func WriteHTML(w io.Writer, p Page) error {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, newView(p)); err != nil {
		return fmt.Errorf("render inventory page: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write inventory page: %w", err)
	}
	return nil
}

// Plural says "1 endpoint", "2 endpoints".
func Plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

type (
	view struct {
		Page
		Hosts     []hostView
		Calls     int64
		Endpoints int64
		HostCount int64
		Span      string // what the sparklines cover
	}
	hostView struct {
		Anchor string // by index: host names are hostile input
		Host   string
		Calls  int64
		Rows   []rowView
		Spark  spark
		Class  map[string]int64 // calls by status class
	}
	rowView struct {
		Endpoint
		Chips []chip
		Spark spark
	}
	chip struct {
		Class string // s2, s3, s4, s5 or sx
		Code  int
		Calls int64
	}
	spark struct {
		Line, Area string // SVG points
		Title      string
		Peak       int64
	}
)

const sparkW, sparkH = 150, 26

func newView(p Page) view {
	v := view{Page: p, Endpoints: int64(len(p.Endpoints))}
	byHost := map[string]*hostView{}
	var order []string
	eps := slices.Clone(p.Endpoints)
	slices.SortStableFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Method, b.Method))
	})
	for _, e := range eps {
		h := byHost[e.Host]
		if h == nil {
			h = &hostView{Host: e.Host, Class: map[string]int64{}}
			byHost[e.Host] = h
			order = append(order, e.Host)
		}
		r := rowView{Endpoint: e, Spark: newSpark(e.Series)}
		for _, code := range slices.Sorted(maps.Keys(e.Statuses)) {
			c := chip{Class: statusClass(code), Code: code, Calls: e.Statuses[code]}
			r.Chips = append(r.Chips, c)
			h.Class[c.Class] += c.Calls
		}
		h.Rows = append(h.Rows, r)
		h.Calls += e.Calls
		v.Calls += e.Calls
	}
	for i, name := range order {
		h := byHost[name]
		h.Anchor = "host-" + strconv.Itoa(i+1)
		h.Spark = newSpark(sumSeries(h.Rows))
		v.Hosts = append(v.Hosts, *h)
	}
	v.HostCount = int64(len(v.Hosts))
	for _, e := range eps {
		if e.Series != nil {
			start := e.Series.Start.UTC()
			end := start.Add(time.Duration(len(e.Series.Counts)) * e.Series.Step)
			endFormat := "15:04:05"
			if end.YearDay() != start.YearDay() || end.Year() != start.Year() {
				endFormat = "2006-01-02 15:04:05"
			}
			v.Span = fmt.Sprintf("calls per %s, %s to %s", StepLabel(e.Series.Step),
				start.Format("2006-01-02 15:04:05"), end.Format(endFormat))
			break
		}
	}
	return v
}

func statusClass(code int) string {
	if code >= 200 && code < 600 {
		return "s" + strconv.Itoa(code/100)
	}
	return "sx"
}

// sumSeries adds up rows' series, which share one grid (see Timeline).
func sumSeries(rows []rowView) *Series {
	var out *Series
	for _, r := range rows {
		s := r.Series
		if s == nil {
			continue
		}
		if out == nil {
			out = &Series{Start: s.Start, Step: s.Step, Counts: make([]int64, len(s.Counts))}
		}
		for i, n := range s.Counts {
			if i < len(out.Counts) {
				out.Counts[i] += n
			}
		}
	}
	return out
}

// newSpark draws s as an SVG polyline scaled to its own peak (the title
// gives the peak, so rows stay readable whatever their volume).
func newSpark(s *Series) spark {
	if s == nil || len(s.Counts) == 0 {
		return spark{}
	}
	peak := slices.Max(s.Counts)
	sp := spark{Peak: peak, Title: fmt.Sprintf("%s per %s; peak %d", Plural(sum(s.Counts), "call", "calls"), StepLabel(s.Step), peak)}
	n := len(s.Counts)
	var line strings.Builder
	for i, c := range s.Counts {
		x := float64(sparkW) / 2
		if n > 1 {
			x = float64(i) * float64(sparkW) / float64(n-1)
		}
		y := float64(sparkH - 2)
		if peak > 0 {
			y = 1 + float64(sparkH-3)*(1-float64(c)/float64(peak))
		}
		if i > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", x, y)
	}
	sp.Line = line.String()
	if n == 1 {
		sp.Line = fmt.Sprintf("0,%s %d,%s", strings.Split(sp.Line, ",")[1], sparkW, strings.Split(sp.Line, ",")[1])
	}
	sp.Area = fmt.Sprintf("0,%d %s %d,%d", sparkH, sp.Line, sparkW, sparkH)
	return sp
}

func sum(c []int64) int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}
