package inventory

import (
	"html/template"
	"regexp"
	"strings"
	"testing"
)

func TestPlural(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 endpoints"}, {1, "1 endpoint"}, {2, "2 endpoints"}} {
		if got := Plural(tc.n, "endpoint", "endpoints"); got != tc.want {
			t.Errorf("Plural(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func render(t *testing.T, p Page) string {
	t.Helper()
	var b strings.Builder
	if err := WriteHTML(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Hosts, paths and methods come from whoever sent the traffic: none of them
// may become markup, in text or in attributes.
func TestHTMLEscapesHostileNames(t *testing.T) {
	t.Parallel()
	inv := New()
	hostile := []string{`<script>alert("h")</script>`, `"><svg onload=alert(1)>`, `' onmouseover='alert(2)`}
	for _, h := range hostile {
		inv.Add(h, `GET"<i>`, `/p/"'<script>x</script>`, 200, t0)
	}
	page := render(t, Page{Title: `<title>"t"`, Subtitle: `</p><b>s`, Endpoints: inv.Snapshot(),
		Facts: []Fact{{Label: `<u>f`, Value: 1}}, Links: []Link{{Text: "<a>", URL: `javascript:alert(1)`}}})
	for _, bad := range []string{`<script>alert`, `<svg onload`, `' onmouseover='`, `<i>`, `<script>x`, `<title>"t"`, `<b>s`, `<u>f`, `javascript:`} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped:\n%s", bad, page)
		}
	}
	for _, good := range []string{`&lt;script&gt;alert(&#34;h&#34;)&lt;/script&gt;`, `&#34;&gt;&lt;svg onload=alert(1)&gt;`} {
		if !strings.Contains(page, good) {
			t.Errorf("page lacks %q:\n%s", good, page)
		}
	}
	if strings.Contains(page, "<script") {
		t.Errorf("a page without Refresh has a script:\n%s", page)
	}
}

var (
	sectionRE = regexp.MustCompile(`<section class="host" id="(host-\d+)" data-host="([^"]*)">`)
	rowRE     = regexp.MustCompile(`<tr class="ep" data-method="([A-Z]+)" data-path="([^"]*)" data-calls="(\d+)">`)
)

func TestHTMLGroupsByHost(t *testing.T) {
	t.Parallel()
	page := render(t, Page{Title: "t", Endpoints: sample()})
	var hosts []string
	for _, m := range sectionRE.FindAllStringSubmatch(page, -1) {
		hosts = append(hosts, m[1]+" "+m[2])
	}
	if got, want := strings.Join(hosts, ","), "host-1 abc123.execute-api.eu-west-1.amazonaws.com,host-2 api.shop.example.com"; got != want {
		t.Errorf("host sections %q, want %q", got, want)
	}
	if n := len(rowRE.FindAllString(page, -1)); n != 6 {
		t.Errorf("%d endpoint rows, want 6", n)
	}
	for _, want := range []string{"2 hosts", "6 endpoints", "7 calls", "4 endpoints &middot; 5 calls", "2 endpoints &middot; 2 calls",
		`<span class="st s4" data-code="418"`, `<span class="st s2" data-code="201"`, "<polyline points="} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	one := New()
	one.Add("h.example.com", "GET", "/", 500, t0)
	page = render(t, Page{Title: "t", Endpoints: one.Snapshot()})
	for _, want := range []string{"1 host", "1 endpoint", "1 call", `<span class="st s5" data-code="500"`} {
		if !strings.Contains(page, "<b>"+want+"</b>") && !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "1 endpoints") || strings.Contains(page, "1 calls") {
		t.Errorf("plural for one:\n%s", page)
	}
}

func TestHTMLRefreshAndNotice(t *testing.T) {
	t.Parallel()
	page := render(t, Page{Title: "t", Refresh: &Refresh{PollURL: "/stats", Key: "completed", Version: 42},
		Notice: template.HTML("<strong>trusted</strong>")})
	for _, want := range []string{`data-version="42"`, `var poll = "/stats", key = "completed", seen =  42 `, "<strong>trusted</strong>", "No completed calls yet."} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(page) {
		t.Errorf("page loads an external asset:\n%s", page)
	}
}
