package nodeprobe

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/wallarm/apigw-connector/pkg/node"
)

// pipelinedRequests is how many health requests the check sends in one write.
const pipelinedRequests = 3

// checkPipelining settles, for this node, the assumption behind
// node.pipeline_depth > 1: several requests written at once on one connection
// are all answered, in order. It uses the health endpoint, so that no call
// reaches API Discovery. conclusive is false when the node closed the
// connection on purpose (Connection: close) before the last reply, which
// says nothing either way.
func checkPipelining(ctx context.Context, cfg node.Config, u *url.URL, hostport string) (ok, conclusive bool, detail string) {
	d := net.Dialer{Timeout: cfg.ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return false, false, fmt.Sprintf("connect %s: %v", hostport, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(cfg.ConnectTimeout + 2*cfg.ReplyTimeout))
	if u.Scheme == "https" {
		tc, err := tlsConfig(cfg.TLS, u.Hostname())
		if err != nil {
			return false, false, fmt.Sprintf("TLS: %v", err)
		}
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return false, false, fmt.Sprintf("TLS handshake: %v", err)
		}
		conn = tconn
	}
	var req []byte
	for range pipelinedRequests {
		req = fmt.Appendf(req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: apigw-connector-probe\r\n\r\n", cfg.HealthPath, u.Host)
	}
	if _, err := conn.Write(req); err != nil {
		return false, true, fmt.Sprintf("write %d pipelined requests: %v", pipelinedRequests, err)
	}
	br := bufio.NewReader(conn)
	for i := range pipelinedRequests {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return false, true, fmt.Sprintf("%d of %d pipelined %s requests answered, then: %v", i, pipelinedRequests, cfg.HealthPath, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return false, true, fmt.Sprintf("pipelined %s request %d of %d answered %d", cfg.HealthPath, i+1, pipelinedRequests, resp.StatusCode)
		}
		if resp.Close && i < pipelinedRequests-1 {
			return true, false, fmt.Sprintf("the node closed the connection after %d of %d pipelined requests (Connection: close): not conclusive, run probe again", i+1, pipelinedRequests)
		}
	}
	return true, true, fmt.Sprintf("%d %s requests in one write on one connection, all answered 2xx in order", pipelinedRequests, cfg.HealthPath)
}
