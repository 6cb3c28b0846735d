// Package traffic generates realistic, deterministic Amazon API Gateway traffic:
// access-log lines in the product's documented JSON format, and the CloudWatch
// Logs subscription documents that carry them. Tests, benchmarks, the generate
// command and the demo use it; it knows the endpoint inventory it generated so
// tests can assert what API Discovery should find. It has no AWS SDK dependency.
package traffic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Options shape the generated traffic. The same Options always give the same
// traffic.
type Options struct {
	Seed            int64     // PRNG seed
	APIs            int       // number of APIs (default 3)
	EndpointsPerAPI int       // endpoints per API (default 8)
	ErrorShare      float64   // share of 4xx/5xx calls, 0..1
	Start           time.Time // time of the first call (default 2026-11-24T10:00:00Z)
	// RouteKeys adds the route template to each line: "resourcePath" for REST
	// APIs, "routeKey" for HTTP APIs, as users who log them do.
	RouteKeys bool
}

// DefaultOptions returns a small, varied traffic shape.
func DefaultOptions() Options {
	return Options{Seed: 1, APIs: 3, EndpointsPerAPI: 8, ErrorShare: 0.05, Start: defaultStart}
}

var defaultStart = time.Date(2026, time.November, 24, 10, 0, 0, 0, time.UTC)

// Kind is the API Gateway API type.
type Kind int

const (
	REST Kind = iota // REST API (v1)
	HTTP             // HTTP API (v2)
)

func (k Kind) String() string {
	if k == HTTP {
		return "HTTP"
	}
	return "REST"
}

// API is one generated API Gateway API (one stage).
type API struct {
	ID           string // 10-character API id
	Kind         Kind
	Region       string
	Stage        string // "$default" for some HTTP APIs
	Host         string // default execute-api endpoint or a custom domain
	CustomDomain bool
	LogGroup     string // the access-log group a subscription would read
}

// Endpoint is one operation of an API: what API Discovery should find.
type Endpoint struct {
	API          *API
	Method       string
	PathTemplate string // e.g. /users/{userId}/orders
}

// CalledTemplate is the template as it appears in $context.path: REST APIs on
// the default endpoint prefix the stage.
func (e Endpoint) CalledTemplate() string {
	if e.API.Kind == REST && !e.API.CustomDomain {
		return "/" + e.API.Stage + e.PathTemplate
	}
	return e.PathTemplate
}

// Key is "METHOD host template", handy for inventory sets.
func (e Endpoint) Key() string { return e.Method + " " + e.API.Host + " " + e.PathTemplate }

// Call is one generated API call, i.e. one access-log line.
type Call struct {
	Endpoint           *Endpoint
	RequestID          string
	Method             string
	Host               string
	Path               string // as called (stage-prefixed on REST default endpoints)
	Protocol           string
	Status             int
	ResponseLatency    int // ms
	IntegrationLatency int // ms; -1 when no integration ran (logged as "-")
	IntegrationStatus  int // 0 when no integration ran
	ResponseLength     int64
	Time               time.Time // millisecond precision, UTC
	SourceIP           string
	UserAgent          string // "" is logged as "-"
	ErrorMessage       string // "" is logged as "-"
	Stage              string
}

// Generator produces calls. It is not safe for concurrent use.
type Generator struct {
	opts      Options
	rng       *rand.Rand
	apis      []*API
	endpoints []Endpoint
	weights   []float64 // cumulative popularity
	now       time.Time
	seq       uint64
	eventSeq  uint64
}

// New returns a generator for o; zero or negative counts take the defaults.
func New(o Options) *Generator {
	if o.APIs <= 0 {
		o.APIs = 3
	}
	if o.EndpointsPerAPI <= 0 {
		o.EndpointsPerAPI = 8
	}
	o.ErrorShare = math.Max(0, math.Min(1, o.ErrorShare))
	if o.Start.IsZero() {
		o.Start = defaultStart
	}
	g := &Generator{
		opts: o,
		rng:  rand.New(rand.NewPCG(uint64(o.Seed), 0x9e3779b97f4a7c15)),
		now:  o.Start.UTC().Truncate(time.Millisecond),
	}
	g.buildInventory()
	return g
}

// APIs returns the generated APIs.
func (g *Generator) APIs() []*API { return g.apis }

// Endpoints returns every endpoint the generator can call (its inventory).
// Calls are spread over all of them, more popular ones more often.
func (g *Generator) Endpoints() []Endpoint { return g.endpoints }

var (
	regions   = []string{"us-east-1", "eu-west-1", "eu-central-1", "us-west-2", "ap-southeast-2"}
	stages    = []string{"prod", "v1", "staging", "live"}
	domains   = []string{"api.shop.example.com", "payments.example.org", "api.acme-corp.io", "gw.tickets.example.net", "public-api.example.co.uk"}
	resources = []resource{
		{"pets", "petId", idNumeric}, {"users", "userId", idUUID}, {"orders", "orderId", idNumeric},
		{"products", "sku", idSlug}, {"invoices", "invoiceId", idUUID}, {"carts", "cartId", idUUID},
		{"sessions", "sessionId", idHex}, {"reports", "reportId", idNumeric}, {"accounts", "accountId", idUUID},
		{"payments", "paymentId", idUUID}, {"tickets", "ticketId", idNumeric}, {"webhooks", "webhookId", idHex},
	}
	subresources = []string{"items", "comments", "history", "attachments", "refunds", "members"}
	userAgents   = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"okhttp/4.12.0",
		"python-requests/2.32.3",
		"Go-http-client/2.0",
		"curl/8.10.1",
		"aws-sdk-js/3.699.0 ua/2.1 os/linux#6.1 lang/js md/nodejs#20.18.0",
		"PostmanRuntime/7.42.0",
		"Apache-HttpClient/4.5.14 (Java/17.0.13)",
	}
)

type idKind int

const (
	idNumeric idKind = iota
	idUUID
	idSlug
	idHex
)

type resource struct {
	name, param string
	id          idKind
}

const idChars = "abcdefghijklmnopqrstuvwxyz0123456789"

func (g *Generator) randString(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	return string(b)
}

func (g *Generator) buildInventory() {
	seenHost := map[string]bool{}
	for i := 0; i < g.opts.APIs; i++ {
		a := &API{ID: g.randString(10, idChars), Region: regions[g.rng.IntN(len(regions))]}
		if i%2 == 1 {
			a.Kind = HTTP
		}
		a.Stage = stages[g.rng.IntN(len(stages))]
		if a.Kind == HTTP && g.rng.IntN(2) == 0 {
			a.Stage = "$default"
		}
		a.Host = a.ID + ".execute-api." + a.Region + ".amazonaws.com"
		if i%3 == 2 {
			d := domains[(i/3)%len(domains)]
			if seenHost[d] {
				d = fmt.Sprintf("api%d.%s", i, d)
			}
			a.Host, a.CustomDomain = d, true
		}
		seenHost[a.Host] = true
		a.LogGroup = "/aws/apigateway/" + a.ID + "/" + a.Stage
		g.apis = append(g.apis, a)
		g.buildEndpoints(a)
	}
	// Zipf-like popularity: endpoint k gets weight 1/(k+1) in a shuffled order.
	order := g.rng.Perm(len(g.endpoints))
	g.weights = make([]float64, len(g.endpoints))
	sum := 0.0
	for i := range g.endpoints {
		sum += 1 / float64(order[i]+1)
		g.weights[i] = sum
	}
	for i := range g.weights {
		g.weights[i] /= sum
	}
}

func (g *Generator) buildEndpoints(a *API) {
	seen := map[string]bool{}
	add := func(method, tmpl string) bool {
		k := method + " " + tmpl
		if seen[k] {
			return false
		}
		seen[k] = true
		g.endpoints = append(g.endpoints, Endpoint{API: a, Method: method, PathTemplate: tmpl})
		return true
	}
	perm := g.rng.Perm(len(resources))
	n := 0
	for attempt := 0; n < g.opts.EndpointsPerAPI; attempt++ {
		r := resources[perm[attempt%len(perm)]]
		prefix := ""
		if attempt >= len(perm) { // ran out of plain resources: version them
			prefix = "/v" + strconv.Itoa(attempt/len(perm)+1)
		}
		coll := prefix + "/" + r.name
		item := coll + "/{" + r.param + "}"
		sub := subresources[g.rng.IntN(len(subresources))]
		subColl := item + "/" + sub
		subItem := subColl + "/{" + singular(sub) + "Id}"
		candidates := []struct{ m, t string }{
			{"GET", coll}, {"GET", item}, {"POST", coll}, {"PUT", item}, {"DELETE", item},
			{"PATCH", item}, {"GET", subColl}, {"POST", subColl}, {"GET", subItem}, {"DELETE", subItem},
		}
		// Always the two GETs, then a random subset of the rest.
		for ci, c := range candidates {
			if n >= g.opts.EndpointsPerAPI {
				break
			}
			if ci >= 2 && g.rng.IntN(3) == 0 {
				continue
			}
			if add(c.m, c.t) {
				n++
			}
		}
	}
}

func singular(s string) string {
	if len(s) > 3 && s[len(s)-3:] == "ies" {
		return s[:len(s)-3] + "y"
	}
	if len(s) > 1 && s[len(s)-1] == 's' {
		return s[:len(s)-1]
	}
	return s
}

func (g *Generator) pickEndpoint() *Endpoint {
	x := g.rng.Float64()
	lo, hi := 0, len(g.weights)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if g.weights[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return &g.endpoints[lo]
}

func (g *Generator) fillTemplate(e *Endpoint) string {
	t := e.CalledTemplate()
	out := make([]byte, 0, len(t)+40)
	for i := 0; i < len(t); i++ {
		if t[i] != '{' {
			out = append(out, t[i])
			continue
		}
		j := i
		for j < len(t) && t[j] != '}' {
			j++
		}
		out = g.appendID(out, idKindOf(t[i+1:j]))
		i = j
	}
	return string(out)
}

func idKindOf(param string) idKind {
	for _, r := range resources {
		if r.param == param {
			return r.id
		}
	}
	return idNumeric
}

func (g *Generator) appendID(out []byte, k idKind) []byte {
	switch k {
	case idUUID:
		return appendUUID(out, g.rng.Uint64(), g.rng.Uint64())
	case idSlug:
		words := []string{"red", "blue", "large", "organic", "cotton", "steel", "mini", "pro", "classic", "eco"}
		out = append(out, words[g.rng.IntN(len(words))]...)
		out = append(out, '-')
		out = append(out, words[g.rng.IntN(len(words))]...)
		out = append(out, '-')
		return strconv.AppendInt(out, int64(g.rng.IntN(999)+1), 10)
	case idHex:
		for range 24 {
			out = append(out, hexd[g.rng.IntN(16)])
		}
		return out
	default:
		return strconv.AppendInt(out, int64(g.rng.IntN(99999)+1), 10)
	}
}

const hexd = "0123456789abcdef"

func appendUUID(out []byte, hi, lo uint64) []byte {
	hi = hi&^(0xf<<12) | 4<<12 // version 4
	lo = lo&^(3<<62) | 2<<62   // RFC 4122 variant
	var b [16]byte
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexd[c>>4], hexd[c&0xf])
	}
	return out
}

var successStatus = map[string]int{"GET": 200, "POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}

type failure struct {
	status      int
	integration bool // the backend answered (integration ran)
	message     string
}

var failures = []failure{
	{400, true, `Invalid request body: "email" is required`},
	{400, false, "Invalid request body"},
	{401, false, "Unauthorized"},
	{403, false, "Missing Authentication Token"},
	{403, false, `User: anonymous is not authorized to perform: execute-api:Invoke on resource: "arn:aws:execute-api"`},
	{404, true, "Not Found"},
	{409, true, `Conflict: order is in state "SHIPPED"`},
	{429, false, "Too Many Requests"},
	{500, true, "Internal server error"},
	{502, true, "Internal server error"},
	{503, false, "Service Unavailable"},
	{504, true, "Endpoint request timed out"},
}

// Next generates the next call. Time advances by a few milliseconds per call.
func (g *Generator) Next() Call { return g.call(g.pickEndpoint()) }

// NextFor generates the next call to one of api's endpoints.
func (g *Generator) NextFor(api *API) Call {
	for range 64 { // popularity-weighted; rejection keeps the weights
		if e := g.pickEndpoint(); e.API == api {
			return g.call(e)
		}
	}
	for i := range g.endpoints {
		if g.endpoints[i].API == api {
			return g.call(&g.endpoints[i+g.rng.IntN(g.opts.EndpointsPerAPI)])
		}
	}
	return g.Next() // api is not one of ours
}

func (g *Generator) call(e *Endpoint) Call {
	g.seq++
	g.now = g.now.Add(time.Duration(1+g.rng.IntN(8)) * time.Millisecond)
	c := Call{
		Endpoint: e,
		Method:   e.Method,
		Host:     e.API.Host,
		Path:     g.fillTemplate(e),
		Stage:    e.API.Stage,
		Time:     g.now,
	}
	// Unique request ids: the sequence number is folded into the random bits.
	if e.API.Kind == REST {
		// An odd multiplier is a bijection mod 2^48: distinct sequence numbers
		// give distinct, random-looking top 48 bits.
		const mask48 = 1<<48 - 1
		hi := (g.seq*0x9E3779B97F4B)&mask48<<16 | g.rng.Uint64()&0xffff
		c.RequestID = string(appendUUID(nil, hi, g.rng.Uint64()))
	} else {
		const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		var id [16]byte
		s := g.seq
		for i := range 6 { // 36 bits of sequence, then random
			id[i] = b64[s&63]
			s >>= 6
		}
		for i := 6; i < 15; i++ {
			id[i] = b64[g.rng.IntN(64)]
		}
		id[15] = '='
		c.RequestID = string(id[:])
	}
	if g.rng.IntN(3) == 0 {
		c.Protocol = "HTTP/2.0"
	} else {
		c.Protocol = "HTTP/1.1"
	}
	// Latency: log-normal-ish backend time plus a little gateway overhead.
	backend := int(math.Exp(3+g.rng.NormFloat64()*0.8)) + 1
	overhead := 2 + g.rng.IntN(15)
	if g.rng.Float64() < g.opts.ErrorShare {
		f := failures[g.rng.IntN(len(failures))]
		c.Status = f.status
		c.ErrorMessage = f.message
		if f.integration {
			c.IntegrationLatency = backend
			c.IntegrationStatus = f.status
			c.ResponseLatency = backend + overhead
		} else {
			c.IntegrationLatency = -1
			c.ResponseLatency = overhead
		}
		c.ResponseLength = int64(20 + len(f.message))
	} else {
		c.Status = successStatus[e.Method]
		c.IntegrationLatency = backend
		c.IntegrationStatus = c.Status
		c.ResponseLatency = backend + overhead
		if c.Status != 204 {
			c.ResponseLength = int64(50 + g.rng.IntN(4000))
		}
	}
	if g.rng.IntN(7) == 0 {
		c.SourceIP = fmt.Sprintf("2001:db8:%x:%x::%x", g.rng.IntN(0xffff), g.rng.IntN(0xffff), g.rng.IntN(0xffff)+1)
	} else {
		c.SourceIP = fmt.Sprintf("%d.%d.%d.%d", 1+g.rng.IntN(222), g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254))
	}
	if g.rng.IntN(20) != 0 {
		c.UserAgent = userAgents[g.rng.IntN(len(userAgents))]
	}
	return c
}

// AppendLine appends the call's access-log line (documented JSON format, no
// trailing newline) to dst.
func (g *Generator) AppendLine(dst []byte, c *Call) []byte {
	return c.appendJSON(dst, g.opts.RouteKeys)
}

// Line generates the next call and returns its access-log line.
func (g *Generator) Line() []byte {
	c := g.Next()
	return g.AppendLine(nil, &c)
}

func (c *Call) appendJSON(b []byte, routeKeys bool) []byte {
	str := func(key, v string) {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":`...)
		if v == "" {
			v = "-"
		}
		b = AppendJSONString(b, v)
		b = append(b, ',')
	}
	num := func(key string, v int64, present bool) {
		if !present {
			str(key, "-")
			return
		}
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":"`...)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, `",`...)
	}
	b = append(b, '{')
	str("requestId", c.RequestID)
	str("httpMethod", c.Method)
	str("path", c.Path)
	str("protocol", c.Protocol)
	num("status", int64(c.Status), true)
	num("responseLength", c.ResponseLength, true)
	str("requestTime", c.Time.Format("02/Jan/2006:15:04:05 -0700"))
	num("requestTimeEpoch", c.Time.UnixMilli(), true)
	num("responseLatency", int64(c.ResponseLatency), true)
	num("integrationLatency", int64(c.IntegrationLatency), c.IntegrationLatency >= 0)
	num("integrationStatus", int64(c.IntegrationStatus), c.IntegrationStatus != 0)
	str("errorMessage", c.ErrorMessage)
	str("stage", c.Stage)
	str("domainName", c.Host)
	str("sourceIp", c.SourceIP)
	str("userAgent", c.UserAgent)
	if routeKeys && c.Endpoint != nil {
		if c.Endpoint.API.Kind == HTTP {
			str("routeKey", c.Method+" "+c.Endpoint.PathTemplate)
		} else {
			str("resourcePath", c.Endpoint.PathTemplate)
		}
	}
	b[len(b)-1] = '}'
	return b
}

// AppendJSONString appends s as a JSON string literal, escaping as API Gateway
// and CloudWatch Logs do (quotes, backslashes, control characters).
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
