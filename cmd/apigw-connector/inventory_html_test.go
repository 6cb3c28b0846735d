package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// The HTML pages are checked in a real browser: headless Chromium loads them
// with data in them, and the test reads the DOM it rendered.

// chromium finds the browser: $CHROMIUM, else chromium on PATH. Missing is a
// failure, not a skip: CI installs it (.ci/run), and a skipped browser test
// would let a broken page through.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (install the Debian package chromium, as .ci/run does, or set CHROMIUM): %v", err)
	}
	return p
}

// dumpDOM loads url in headless Chromium and returns the DOM once the page's
// timers have run for budget of virtual time (no real waiting). The browser
// runs in its own process group, killed whole when the test's bound passes.
func dumpDOM(t *testing.T, url string, budget time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium(t), "--headless=new", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
		"--user-data-dir="+t.TempDir(), fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()),
		"--dump-dom", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if cmd.Process != nil {
		// Renderer and zygote children outlive a crashed parent otherwise.
		if kerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
			t.Logf("kill chromium's process group: %v", kerr)
		}
	}
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v (context: %v)\n%s", url, err, ctx.Err(), stderr.String())
	}
	if len(out) == 0 {
		t.Fatalf("chromium dumped no DOM for %s\n%s", url, stderr.String())
	}
	return string(out)
}

// renderedHost is one host section as the browser rendered it.
type renderedHost struct {
	host string
	rows []string // "METHOD path calls status:class ..."
}

var (
	sectionRE = regexp.MustCompile(`<section class="host" id="host-\d+" data-host="([^"]*)">`)
	rowRE     = regexp.MustCompile(`(?s)<tr class="ep" data-method="([^"]*)" data-path="([^"]*)" data-calls="(\d+)">(.*?)</tr>`)
	chipRE    = regexp.MustCompile(`<span class="st (s[2-5x])" data-code="(\d+)"`)
	sparkRE   = regexp.MustCompile(`<polyline points="([^"]*)"`)
	scriptRE  = regexp.MustCompile(`<script[\s>]`)
	versionRE = regexp.MustCompile(`<main id="inv" data-version="(\d*)"`)
)

// parseHosts reads host sections and their rows, in page order, from a
// DOM that Chromium serialized (attribute values escaped, hence Unescape).
func parseHosts(t *testing.T, dom string) []renderedHost {
	t.Helper()
	locs := sectionRE.FindAllStringSubmatchIndex(dom, -1)
	var out []renderedHost
	for i, loc := range locs {
		end := len(dom)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		h := renderedHost{host: html.UnescapeString(dom[loc[2]:loc[3]])}
		for _, m := range rowRE.FindAllStringSubmatch(dom[loc[1]:end], -1) {
			row := fmt.Sprintf("%s %s %s", html.UnescapeString(m[1]), html.UnescapeString(m[2]), m[3])
			for _, c := range chipRE.FindAllStringSubmatch(m[4], -1) {
				row += " " + c[2] + ":" + c[1]
			}
			if !sparkRE.MatchString(m[4]) {
				row += " (no sparkline)"
			}
			h.rows = append(h.rows, row)
		}
		out = append(out, h)
	}
	return out
}

const hostileHost = `<script>alert("host")</script>`

// sendCall delivers one call to devnode as its two messages.
func sendCall(h http.Handler, id, host, method, path string, status int) error {
	hdr := func(r *http.Request) {
		r.Header.Set(devnode.DefaultRequestIDHeader, id)
		r.Header.Set(devnode.DefaultForwardedHostHeader, host)
		r.Header.Set(devnode.DefaultForwardedForHeader, "203.0.113.7")
		r.Header.Set(devnode.DefaultConnectorTypeHeader, "apigw-connector")
		r.Header.Set(devnode.DefaultConnectorVersionHeader, "0.1.0")
	}
	req := httptest.NewRequest(method, "http://node"+path, nil)
	hdr(req)
	res := httptest.NewRequest(http.MethodPost, "http://node"+path, nil)
	hdr(res)
	res.Header.Set(devnode.DefaultResponseCodeHeader, fmt.Sprint(status))
	for _, r := range []*http.Request{req, res} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			return fmt.Errorf("%s %s %s: devnode answered %d %s", host, r.Method, path, w.Code, w.Body.String())
		}
	}
	return nil
}

func TestInventoryHTMLDevnodePageInBrowser(t *testing.T) {
	t.Parallel()
	// The browser's first poll of /stats brings a new API's calls, so the
	// page must redraw itself to show them.
	var dn *devnode.Server
	var once sync.Once
	dn, base := startDevnode(t, devnode.DefaultOptions(), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/stats" && r.Header.Get(devnode.DefaultRequestIDHeader) == "" {
				once.Do(func() {
					// Not Fatal: this runs on the server's goroutine.
					if err := sendCall(dn.Handler(), "late-1", "late.example.com", "GET", "/news/7", 200); err != nil {
						t.Error(err)
					}
				})
			}
			h.ServeHTTP(w, r)
		})
	})
	calls := []struct {
		host, method, path string
		status             int
	}{
		{"api.shop.example.com", "GET", "/users/42", 200},
		{"api.shop.example.com", "GET", "/users/43", 404},
		{"api.shop.example.com", "GET", "/users/44", 200},
		{"api.shop.example.com", "POST", "/users", 201},
		{"abc123.execute-api.eu-west-1.amazonaws.com", "GET", "/prod/old", 302},
		{"abc123.execute-api.eu-west-1.amazonaws.com", "PUT", "/prod/orders/9", 503},
		{"abc123.execute-api.eu-west-1.amazonaws.com", "PUT", "/prod/orders/10", 500},
		{hostileHost, "GET", `/x/"q'/<b>bold</b>`, 200},
	}
	for i, c := range calls {
		if err := sendCall(dn.Handler(), fmt.Sprintf("c-%d", i), c.host, c.method, c.path, c.status); err != nil {
			t.Fatal(err)
		}
	}

	dom := dumpDOM(t, base+"/", 10*time.Second)
	got := parseHosts(t, dom)
	want := []renderedHost{
		{host: hostileHost, rows: []string{`GET /x/"q'/<b>bold</b> 1 200:s2`}},
		{host: "abc123.execute-api.eu-west-1.amazonaws.com", rows: []string{
			"GET /prod/old 1 302:s3", "PUT /prod/orders/{id} 2 500:s5 503:s5"}},
		{host: "api.shop.example.com", rows: []string{"POST /users 1 201:s2", "GET /users/{id} 3 200:s2 404:s4"}},
		{host: "late.example.com", rows: []string{"GET /news/{id} 1 200:s2"}},
	}
	if !slices.EqualFunc(got, want, func(a, b renderedHost) bool { return a.host == b.host && slices.Equal(a.rows, b.rows) }) {
		t.Errorf("hosts and rows rendered:\n%q\nwant:\n%q\nDOM:\n%s", got, want, dom)
	}
	if v := versionRE.FindStringSubmatch(dom); v == nil || v[1] != fmt.Sprint(len(calls)+1) {
		t.Errorf("page version %q after the redraw, want %d", v, len(calls)+1)
	}
	// Only the page's own script: the hostile host and path stayed text.
	if n := len(scriptRE.FindAllString(dom, -1)); n != 1 {
		t.Errorf("%d script elements in the DOM, want the page's 1", n)
	}
	if strings.Contains(dom, "<b>bold") {
		t.Errorf("the path's markup became elements:\n%s", dom)
	}
	if !strings.Contains(dom, "not a Wallarm node") {
		t.Error("the page does not say devnode is a stand-in")
	}
}

func TestInventoryHTMLFileInBrowser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var lines strings.Builder
	line := func(i int, host, method, path string, status int, at time.Time) {
		fmt.Fprintf(&lines, `{"requestId":"r%d","httpMethod":%q,"path":%q,"status":"%d","domainName":%q,"requestTimeEpoch":"%d"}`+"\n",
			i, method, path, status, host, at.UnixMilli())
	}
	// Three hours of calls: the file's timeline spans them all.
	for i := range 30 {
		line(i, "api.shop.example.com", "GET", fmt.Sprintf("/users/%d", i), []int{200, 200, 404}[i%3], t0.Add(time.Duration(i)*6*time.Minute))
	}
	line(100, "abc123.execute-api.eu-west-1.amazonaws.com", "DELETE", "/prod/carts/7", 503, t0.Add(time.Hour))
	// The parser refuses a host that is not a host name; paths are free.
	line(101, "evil.example.com", "GET", `/"'><img src=x>`, 301, t0)
	in := filepath.Join(dir, "access.log")
	if err := os.WriteFile(in, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, page, errs := runCmd(t, "inventory", "--format", "html", in)
	if code != 0 {
		t.Fatalf("inventory --format html: exit %d\n%s", code, errs)
	}
	out := filepath.Join(dir, "inventory.html")
	if err := os.WriteFile(out, []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "src=\"") {
		t.Errorf("the page refers to something outside itself:\n%s", page)
	}

	dom := dumpDOM(t, "file://"+out, time.Second)
	got := parseHosts(t, dom)
	want := []renderedHost{
		{host: "abc123.execute-api.eu-west-1.amazonaws.com", rows: []string{"DELETE /prod/carts/{id} 1 503:s5"}},
		{host: "api.shop.example.com", rows: []string{"GET /users/{id} 30 200:s2 404:s4"}},
		{host: "evil.example.com", rows: []string{`GET /"'><img src=x> 1 301:s3`}},
	}
	if !slices.EqualFunc(got, want, func(a, b renderedHost) bool { return a.host == b.host && slices.Equal(a.rows, b.rows) }) {
		t.Errorf("hosts and rows rendered:\n%q\nwant:\n%q\nDOM:\n%s", got, want, dom)
	}
	if n := len(scriptRE.FindAllString(dom, -1)); n != 0 {
		t.Errorf("%d script elements in a file page, want none", n)
	}
	if strings.Contains(dom, "<img") {
		t.Errorf("the path's markup became an element:\n%s", dom)
	}
	// The busy endpoint's sparkline has a point per step over the 3 hours,
	// and the page says which step that is.
	if !strings.Contains(dom, "calls per 5 min") {
		t.Errorf("the page does not name the sparklines' step (5 min for 3 hours in 60 steps):\n%s", dom)
	}
}

// The table's summary line counts in words that agree with the numbers.
func TestInventorySummaryGrammar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines string
		want  string
	}{
		{"one of each", `{"requestId":"r1","httpMethod":"GET","path":"/a","status":"200","domainName":"a.example.com"}` + "\nnot json\n",
			"1 endpoint from 1 call (1 line not an API call, 0 documents undecodable)"},
		{"several", `{"requestId":"r1","httpMethod":"GET","path":"/a","status":"200","domainName":"a.example.com"}` + "\n" +
			`{"requestId":"r2","httpMethod":"GET","path":"/b","status":"200","domainName":"a.example.com"}` + "\n",
			"2 endpoints from 2 calls (0 lines not API calls, 0 documents undecodable)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "access.log")
			if err := os.WriteFile(p, []byte(tc.lines), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errs := runCmd(t, "inventory", p)
			if code != 0 || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want %q", code, errs, tc.want)
			}
		})
	}
}
