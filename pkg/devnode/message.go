package devnode

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

var (
	textPlain       = []string{"text/plain; charset=utf-8"}
	bodyRequestOK   = []byte("request accepted\n")
	bodyResponseOK  = []byte("call completed\n")
	bodyHealthy     = []byte("ok\n")
	bodyFailing     = []byte("failing on purpose\n")
	nosniff         = []string{"nosniff"}
	missingHeaderOf = [...]Reason{
		ReasonMissingRequestID, ReasonMissingForwardedHost, ReasonMissingForwardedFor,
		ReasonMissingConnectorType, ReasonMissingConnectorVersion,
	}
)

// writeText replies without going through fmt or header canonicalisation: this is
// the hot path. The shared header slices are never modified.
func writeText(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h["Content-Type"] = textPlain
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// header returns the single value of the canonical header key k. repeated is true
// when the header occurs more than once, which the node cannot attribute.
func header(r *http.Request, k string) (v string, repeated bool) {
	vs := r.Header[k]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], false
	default:
		return vs[0], true
	}
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, kind int, reason Reason, detail string) {
	code := http.StatusBadRequest
	if reason == ReasonPendingFull {
		code = http.StatusServiceUnavailable
	}
	s.counters.rejects[reason].Add(1)
	if reason == ReasonDuplicateRequestID {
		s.counters.duplicates.Add(1)
	}
	s.metrics.byReason[reason].Inc()
	if rej, typ := nodeReason(reason); rej != "" {
		s.metrics.nodeRejected.WithLabelValues(rej).Inc()
	} else if typ != "" {
		s.metrics.nodeErrors.WithLabelValues(typ).Inc()
	}
	s.metrics.message(kind, code)
	s.log.Warn("devnode rejected a message", "reason", reason.String(), "detail", detail,
		"kind", kindNames[kind], "method", r.Method, "path", r.URL.Path,
		"request_id", r.Header.Get(s.hRequestID))
	writeText(w, code, []byte(detail+"\n"))
}

func (s *Server) serveMessage(w http.ResponseWriter, r *http.Request) {
	respCode, isResponse := r.Header[s.hRespCode]
	kind := kindRequest
	if isResponse {
		kind = kindResponse
	}
	if !s.wait(r) {
		return
	}
	now := s.now()
	if code := s.failing(now); code != 0 {
		s.counters.failed.Add(1)
		s.metrics.message(kind, code)
		writeText(w, code, bodyFailing)
		return
	}

	s.metrics.nodeSeen.WithLabelValues(kindNames[kind]).Inc()

	// Identity headers first, in the order the contract lists them.
	names := [...]string{s.hRequestID, s.hForwardedHost, s.hForwardedFor, s.hConnectorType, s.hConnectorVersion}
	var vals [len(names)]string
	required := len(names)
	if !s.opts.RequireConnectorHeaders {
		required = 3
	}
	for i, k := range names {
		v, repeated := header(r, k)
		if repeated {
			s.reject(w, r, kind, ReasonRepeatedHeader, "repeated header "+k)
			return
		}
		if v == "" && i < required {
			s.reject(w, r, kind, missingHeaderOf[i], "missing header "+k)
			return
		}
		vals[i] = v
	}
	id, host, clientIP := vals[0], vals[1], vals[2]
	if reason, detail := s.admit(r, host, vals[3]); reason != numReasons {
		s.reject(w, r, kind, reason, detail)
		return
	}

	if _, err := netip.ParseAddr(clientIP); err != nil {
		if _, perr := netip.ParseAddrPort(clientIP); perr == nil {
			s.reject(w, r, kind, ReasonClientIPWithPort, "client ip with port in "+s.hForwardedFor+": "+clientIP)
		} else {
			s.reject(w, r, kind, ReasonBadClientIP, "bad client ip in "+s.hForwardedFor+": "+clientIP)
		}
		return
	}
	// Messages carry metadata only (Content-Length: 0); -1 means a chunked body.
	if r.ContentLength != 0 {
		s.reject(w, r, kind, ReasonUnexpectedBody, "unexpected body: messages carry no body (Content-Length: 0)")
		return
	}
	path := r.URL.Path
	if p := s.opts.PathPrefix; p != "" {
		rest, ok := strings.CutPrefix(path, p)
		if !ok || (rest != "" && rest[0] != '/') {
			s.reject(w, r, kind, ReasonBadPathPrefix, "bad path prefix: path "+path+" does not start with "+p)
			return
		}
		if rest == "" {
			rest = "/"
		}
		path = rest
	}

	if !isResponse {
		s.checkOwnHost(r, host)
		reason, ok := s.pairs.addRequest(Call{
			ID: id, LogRequestID: LogRequestID(id), Method: r.Method, Host: host, Path: path, ClientIP: clientIP,
			ConnectorType: vals[3], ConnectorVersion: vals[4], RequestAt: now,
		})
		if !ok {
			detail := "duplicate request id " + id
			if reason == ReasonPendingFull {
				detail = "pending table full: too many request messages wait for their response; retry later"
			}
			s.reject(w, r, kind, reason, detail)
			return
		}
		s.counters.requests.Add(1)
		s.metrics.message(kind, http.StatusOK)
		writeText(w, http.StatusOK, bodyRequestOK)
		return
	}

	if len(respCode) > 1 {
		s.reject(w, r, kind, ReasonRepeatedHeader, "repeated header "+s.hRespCode)
		return
	}
	status, ok := parseStatus(respCode[0])
	if !ok {
		s.reject(w, r, kind, ReasonBadResponseCode, "bad response code in "+s.hRespCode+": "+respCode[0]+" (want 100-599)")
		return
	}
	if r.Method != s.opts.ResponseMethod {
		s.reject(w, r, kind, ReasonBadResponseMethod, "bad response method "+r.Method+": response messages use "+s.opts.ResponseMethod)
		return
	}
	call, reason, ok := s.pairs.completeResponse(id, responseMatch{host: host, path: path, clientIP: clientIP}, status, now)
	if !ok {
		var detail string
		switch reason {
		case ReasonDuplicateResponse:
			detail = "duplicate response for completed request id " + id
		case ReasonMismatchedResponse:
			detail = "mismatched response: host, path or client ip differ from request id " + id
		default:
			detail = "response without request: no pending request message with id " + id
		}
		s.reject(w, r, kind, reason, detail)
		return
	}
	s.counters.responses.Add(1)
	s.counters.completed.Add(1)
	s.metrics.message(kind, http.StatusOK)
	s.metrics.completed.Inc()
	s.inv.add(call.Host, call.Method, call.Path, call.Status, call.RequestAt)
	writeText(w, http.StatusOK, bodyResponseOK)
}

// checkOwnHost flags a forwarded host that is this server's own address: a
// connector that could not name the API's host and sent the node's instead,
// which would file every API of the inventory under the node. The call is
// still accepted (nothing public says a real node refuses it), but counted.
func (s *Server) checkOwnHost(r *http.Request, host string) {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || !isOwnAddress(host, local.String()) {
		return
	}
	s.counters.ownHost.Add(1)
	s.ownHostSeen.Store(&host)
	s.log.Warn("devnode got a call whose forwarded host is the node's own address: the connector could not name the API's host",
		"host", host, "request_id", r.Header.Get(s.hRequestID))
}

// isOwnAddress reports whether host (host or host:port) names local, the
// listener's address: the same port, and the listener's IP, a loopback
// address, "localhost" or the unspecified address.
func isOwnAddress(host, local string) bool {
	lh, lp, err := net.SplitHostPort(local)
	if err != nil {
		return false
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != lp {
		return false
	}
	if strings.EqualFold(h, "localhost") || h == lh {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && (a.IsLoopback() || a.IsUnspecified() || a.Unmap().String() == lh)
}

// parseStatus accepts exactly three digits in 100-599.
func parseStatus(v string) (int, bool) {
	if len(v) != 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < 3; i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 100 && n <= 599
}

// admit applies the node-style admission lists (connector type, original
// host, connector address); numReasons means admitted.
func (s *Server) admit(r *http.Request, host, connectorType string) (Reason, string) {
	if l := s.opts.AllowedConnectorTypes; len(l) > 0 && !slices.Contains(l, connectorType) {
		return ReasonConnectorInfo, "connector type " + strconv.Quote(connectorType) + " is not allowed"
	}
	if l := s.opts.AllowedHosts; len(l) > 0 && !slices.ContainsFunc(l, func(h string) bool { return strings.EqualFold(h, host) }) {
		return ReasonHost, "host " + strconv.Quote(host) + " is not in allowed_hosts"
	}
	if len(s.allowedNets) > 0 {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !slices.ContainsFunc(s.allowedNets, func(p netip.Prefix) bool { return p.Contains(ap.Addr().Unmap()) }) {
			return ReasonRemoteAddress, "connector address " + r.RemoteAddr + " is not in allowed_networks"
		}
	}
	return numReasons, ""
}
