// Package nodeprobe checks a node end to end before a user deploys: TCP (and
// TLS), the health endpoint, then one synthetic call sent as OPTIONS (API
// Discovery ignores OPTIONS, so the inventory is not polluted) with a fresh
// request id, and, given the node's Prometheus endpoint, what the node's own
// counters say about it.
package nodeprobe

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
	"github.com/wallarm/apigw-connector/pkg/node"
	"github.com/wallarm/apigw-connector/pkg/telemetry"
)

// The node's connector-server metrics (Wallarm's metric reference).
const (
	MetricSeen     = "wallarm_gonode_http_connector_server_messages_seen_total"
	MetricRejected = "wallarm_gonode_http_connector_server_messages_rejected_total"
	MetricErrors   = "wallarm_gonode_http_connector_server_errors_total"
)

// Options shape the probe.
type Options struct {
	// Host is the API host the synthetic call names (node allowed_hosts must
	// accept it). Empty: probe.apigw-connector.invalid.
	Host string
	// NodeMetricsURL is the node's Prometheus endpoint; empty: not read.
	NodeMetricsURL string
	// CallTimeout bounds the synthetic call, retries included.
	CallTimeout time.Duration
}

// Step is one check and what it found.
type Step struct {
	Name   string
	OK     bool
	Detail string
}

// Report is the probe's result. Accepted: the node accepted both messages.
type Report struct {
	Steps    []Step
	Accepted bool
	// PipeliningFailed: node.pipeline_depth > 1 and the node did not answer
	// pipelined requests; the connector as configured would not work well.
	PipeliningFailed bool
	Causes           []string // what the node's counters or replies point at, with the fix
}

// OK is the probe's verdict: the call was accepted and nothing configured
// was found not to work.
func (r Report) OK() bool { return r.Accepted && !r.PipeliningFailed }

// Write prints the report for a person.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	for _, s := range r.Steps {
		mark := "ok  "
		if !s.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s %-13s %s\n", mark, s.Name, s.Detail)
	}
	for _, c := range r.Causes {
		fmt.Fprintf(&b, "  -> %s\n", c)
	}
	if r.Accepted {
		b.WriteString("the node accepted the probe call (request and response message)\n")
		if r.PipeliningFailed {
			b.WriteString("but it does not answer pipelined requests: set node.pipeline_depth: 1\n")
		}
	} else {
		b.WriteString("the node did NOT accept the probe call\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Run probes the node cfg points at.
func Run(ctx context.Context, cfg node.Config, opts Options, log *slog.Logger) Report {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Host == "" {
		opts.Host = "probe.apigw-connector.invalid"
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = cfg.ConnectTimeout + 2*cfg.ReplyTimeout
	}
	var r Report
	add := func(name string, ok bool, format string, a ...any) {
		r.Steps = append(r.Steps, Step{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		add("config", false, "node.url does not parse as scheme://host:port")
		return r
	}
	hostport := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		hostport = net.JoinHostPort(u.Hostname(), port)
	}

	// 1. TCP
	start := time.Now()
	conn, err := net.DialTimeout("tcp", hostport, cfg.ConnectTimeout)
	if err != nil {
		add("tcp", false, "connect %s: %v", hostport, err)
		r.Causes = append(r.Causes, fmt.Sprintf("nothing accepts connections at %s: check node.url's host and port (the node's connector.address) and the network path (security groups, NACLs)", hostport))
		return r
	}
	add("tcp", true, "connected to %s in %s", hostport, time.Since(start).Round(time.Millisecond))
	// 2. TLS
	if u.Scheme == "https" {
		tc, err := tlsConfig(cfg.TLS, u.Hostname())
		if err == nil {
			conn.SetDeadline(time.Now().Add(cfg.ReplyTimeout))
			tconn := tls.Client(conn, tc)
			err = tconn.HandshakeContext(ctx)
			if err == nil {
				st := tconn.ConnectionState()
				add("tls", true, "%s, server name %s", tls.VersionName(st.Version), tc.ServerName)
			}
		}
		if err != nil {
			add("tls", false, "handshake: %v", err)
			r.Causes = append(r.Causes, "TLS failed: check node.tls.ca_file / server_name (or node.url's scheme: http for a plain-HTTP connector.address)")
			conn.Close()
			return r
		}
	}
	conn.Close()

	reg := prometheus.NewRegistry()
	client, err := node.New(cfg, reg, log)
	if err != nil {
		add("config", false, "%v", err)
		return r
	}
	defer client.Close()

	// 3. Health
	if cfg.HealthPath == "" {
		add("health", true, "skipped (node.health_path is off)")
	} else if err := client.Probe(ctx); err != nil {
		add("health", false, "%v", err)
		r.Causes = append(r.Causes, fmt.Sprintf("the health endpoint %s did not answer 2xx: enable external_health_check on the node with that endpoint, or set node.health_path to it (off: TCP check only)", cfg.HealthPath))
	} else {
		add("health", true, "%s answered 2xx", cfg.HealthPath)
	}

	// Pipelining: settle the assumption node.pipeline_depth > 1 rests on.
	switch {
	case cfg.PipelineDepth <= 1:
		add("pipelining", true, "skipped (node.pipeline_depth is 1: off)")
	case cfg.HealthPath == "":
		add("pipelining", true, "not checked (it uses the health endpoint, and node.health_path is off)")
	default:
		ok, conclusive, detail := checkPipelining(ctx, cfg, u, hostport)
		add("pipelining", ok, "%s", detail)
		if !ok && conclusive {
			r.PipeliningFailed = true
			r.Causes = append(r.Causes, "the node, or something between it and the connector, does not answer requests pipelined on one connection: set node.pipeline_depth: 1 (APIGW_CONNECTOR_NODE_PIPELINE_DEPTH=1)")
		}
	}

	// 4. The node's counters, before.
	var before map[string]*dto.MetricFamily
	if opts.NodeMetricsURL != "" {
		before, err = scrape(ctx, opts.NodeMetricsURL)
		if err != nil {
			add("node-metrics", false, "%v", err)
			opts.NodeMetricsURL = ""
		}
	}

	// 5. One synthetic call.
	id := newID()
	call := &accesslog.APICall{
		RequestID: id, NodeID: id, Method: "OPTIONS", Host: opts.Host, Path: "/apigw-connector-probe",
		Protocol: "HTTP/1.1", Status: 204, SourceIP: "192.0.2.10", UserAgent: "apigw-connector-probe",
		RequestTime: time.Now(),
	}
	cctx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
	err = client.Deliver(cctx, call)
	cancel()
	replies := replyCodes(reg)
	switch {
	case err == nil:
		r.Accepted = true
		add("call", true, "OPTIONS %s%s id %s: both messages accepted (replies %s)", opts.Host, call.Path, id, replies)
	default:
		var rej *node.RejectedError
		if errors.As(err, &rej) {
			add("call", false, "id %s: %v", id, err)
			r.Causes = append(r.Causes, rejectionCause(rej.Code))
		} else {
			add("call", false, "id %s: no acceptance within %s (replies %s; retries %s): %v", id, opts.CallTimeout, replies, retryReasons(reg), err)
			if strings.Contains(replies, "500") {
				r.Causes = append(r.Causes, "the node answered 500, which it sends when its connector.app_reply_timeout passes: it may not pair the two messages (check node.response_method, node.headers.*) or be overloaded")
			}
		}
	}

	// 6. The node's counters, after: they may lag the replies a little.
	if opts.NodeMetricsURL != "" {
		var after map[string]*dto.MetricFamily
		deadline := time.Now().Add(3 * time.Second)
		for {
			after, err = scrape(ctx, opts.NodeMetricsURL)
			if err != nil || delta(before, after, MetricSeen, "type", "response") > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			add("node-metrics", false, "%v", err)
		} else {
			r.Steps = append(r.Steps, metricsStep(before, after))
			r.Causes = append(r.Causes, metricCauses(before, after, cfg)...)
			if delta(before, after, MetricRejected, "", "") > 0 {
				r.Accepted = false
			}
		}
	}
	r.Causes = slices.Compact(r.Causes)
	return r
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tlsConfig is the node client's TLS configuration, verified for host.
func tlsConfig(c node.TLSConfig, host string) (*tls.Config, error) {
	tc, err := c.ClientConfig()
	if err != nil {
		return nil, err
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	return tc, nil
}

func rejectionCause(code int) string {
	switch code {
	case 400:
		return "400: the node could not use a message; compare what the official connector sends with `apigw-connector capture` and adjust node.* to match"
	case 401, 403:
		return fmt.Sprintf("%d on a message: the node refuses this connector; check connector.allowed_networks and allowed_hosts on the node", code)
	case 404:
		return "404: nothing serves the message path; check node.url's path and node.path_prefix"
	case 415:
		return "415: the node expects a body encoding the raw profile does not send; capture the official connector to see which"
	}
	return fmt.Sprintf("%d: a permanent rejection; the node's log says why", code)
}

// metricCauses names the cause the node's counters show.
func metricCauses(before, after map[string]*dto.MetricFamily, cfg node.Config) []string {
	var out []string
	for _, reason := range labelValues(after, MetricRejected, "reason") {
		if delta(before, after, MetricRejected, "reason", reason) <= 0 {
			continue
		}
		switch reason {
		case "connector_info":
			out = append(out, fmt.Sprintf("rejected for connector_info: the node does not accept connector type %q (version %q); set node.connector_type (and node.connector_version) to what the node accepts — capture the official connector to see its values", cfg.ConnectorType, cfg.ConnectorVersion))
		case "host":
			out = append(out, "rejected for host: the probe's host is not in the node's connector.allowed_hosts; rerun with --host set to one of your API domains, or add it on the node")
		case "remote_address":
			out = append(out, "rejected for remote_address: this machine's address is not in the node's connector.allowed_networks; add the connector's egress CIDR on the node")
		default:
			out = append(out, fmt.Sprintf("rejected for %s (node metric %s)", reason, MetricRejected))
		}
	}
	for _, typ := range labelValues(after, MetricErrors, "type") {
		if delta(before, after, MetricErrors, "type", typ) > 0 {
			out = append(out, fmt.Sprintf("the node counted error %s (%s)", typ, MetricErrors))
		}
	}
	if delta(before, after, MetricSeen, "type", "request") > 0 && delta(before, after, MetricSeen, "type", "response") <= 0 {
		out = append(out, "the node saw the request message but not the response message: check node.response_method and node.headers.response_code")
	}
	return out
}

func metricsStep(before, after map[string]*dto.MetricFamily) Step {
	req := delta(before, after, MetricSeen, "type", "request")
	resp := delta(before, after, MetricSeen, "type", "response")
	rej := delta(before, after, MetricRejected, "", "")
	errs := delta(before, after, MetricErrors, "", "")
	return Step{Name: "node-metrics", OK: req > 0 && resp > 0 && rej == 0 && errs == 0,
		Detail: fmt.Sprintf("seen +%g request, +%g response; rejected +%g; errors +%g", req, resp, rej, errs)}
}

func scrape(ctx context.Context, u string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("read node metrics: %w", err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read node metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read node metrics %s: status %d", u, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("parse node metrics: %w", err)
	}
	return mfs, nil
}

// sum adds the samples of a counter whose label matches (label "" = all).
func sum(mfs map[string]*dto.MetricFamily, name, label, value string) float64 {
	return telemetry.Snapshot{mfs[name]}.Sum(name, label, value)
}

func delta(before, after map[string]*dto.MetricFamily, name, label, value string) float64 {
	return sum(after, name, label, value) - sum(before, name, label, value)
}

func labelValues(mfs map[string]*dto.MetricFamily, name, label string) []string {
	var out []string
	if mf := mfs[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// replyCodes lists our client's reply codes as "kind code xN".
func replyCodes(reg *prometheus.Registry) string {
	return labelled(reg, "apigw_connector_node_messages_sent_total")
}

func retryReasons(reg *prometheus.Registry) string {
	return labelled(reg, "apigw_connector_node_retries_total")
}

func labelled(reg *prometheus.Registry, name string) string {
	mfs, err := reg.Gather()
	if err != nil {
		return "unknown"
	}
	var parts []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetValue())
			}
			parts = append(parts, fmt.Sprintf("%s x%g", strings.Join(ls, " "), m.GetCounter().GetValue()))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
