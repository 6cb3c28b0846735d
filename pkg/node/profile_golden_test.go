package node

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// rawNode is a loopback node stand-in that keeps every message byte for byte
// (head and body) and answers each with reply(n), a full raw response.
type rawNode struct {
	ln    net.Listener
	reply func(n int) string
	wg    sync.WaitGroup

	mu    sync.Mutex
	msgs  []string
	conns []net.Conn
}

func newRawNode(t *testing.T, reply func(n int) string) *rawNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if reply == nil {
		reply = func(int) string { return ok200 }
	}
	s := &rawNode{ln: ln, reply: reply}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawNode) url() string  { return "http://" + s.ln.Addr().String() }
func (s *rawNode) host() string { return s.ln.Addr().String() }

func (s *rawNode) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		var msg strings.Builder
		length := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			msg.WriteString(line)
			if line == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && textproto.CanonicalMIMEHeaderKey(k) == "Content-Length" {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		msg.Write(body)
		s.mu.Lock()
		n := len(s.msgs)
		s.msgs = append(s.msgs, msg.String())
		s.mu.Unlock()
		resp := s.reply(n)
		if resp == "" { // hang up without a reply
			return
		}
		if _, err := io.WriteString(conn, resp); err != nil {
			return
		}
	}
}

func (s *rawNode) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

func (s *rawNode) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// The raw profile's exact bytes on the wire, for the defaults and with every
// shape setting changed: a refactoring of the message code must not move a byte.
func TestRawProfileGoldenBytes(t *testing.T) {
	t.Parallel()
	const (
		api = "abc123.execute-api.eu-west-1.amazonaws.com"
		id  = "c0ffee00-1111-2222-3333-444455556666"
	)
	tests := []struct {
		name     string
		edit     func(*Config)
		call     func(*accesslog.APICall)
		req, res string // "<node>" stands for the node's host:port
	}{
		{
			name: "defaults",
			req: "GET /prod/users/42 HTTP/1.1\r\n" +
				"Host: " + api + "\r\n" +
				"User-Agent: curl/8.5.0\r\n" +
				"X-Wallarm-Connector-Type: apigw-connector\r\n" +
				"X-Wallarm-Connector-Version: 1.0.0-test\r\n" +
				"X-Wallarm-Forwarded-For: 203.0.113.7\r\n" +
				"X-Wallarm-Forwarded-Host: " + api + "\r\n" +
				"X-Wallarm-Request-Id: " + id + "\r\n" +
				"\r\n",
			res: "POST /prod/users/42 HTTP/1.1\r\n" +
				"Host: " + api + "\r\n" +
				"Content-Length: 0\r\n" +
				"X-Wallarm-Connector-Type: apigw-connector\r\n" +
				"X-Wallarm-Connector-Version: 1.0.0-test\r\n" +
				"X-Wallarm-Forwarded-For: 203.0.113.7\r\n" +
				"X-Wallarm-Forwarded-Host: " + api + "\r\n" +
				"X-Wallarm-Request-Id: " + id + "\r\n" +
				"X-Wallarm-Response-Code: 200\r\n" +
				"\r\n",
		},
		{
			name: "every shape setting changed",
			edit: func(c *Config) {
				c.Profile = DefaultProfile
				c.RequestIDFormat = RequestIDHex
				c.HostMode = HostModeNode
				c.PathPrefix = "/apigw/"
				c.ResponseMethod = "PUT"
				c.ConnectorType = "aws-apigw"
				c.ConnectorVersion = "9.9"
				c.Headers = HeaderNames{
					RequestID: "x-req-id", ForwardedHost: "X-Orig-Host", ForwardedFor: "X-Real-Ip",
					ConnectorType: "X-Conn-Type", ConnectorVersion: "X-Conn-Version", ResponseCode: "x-status",
				}
				c.ExtraHeaders = map[string]string{"x-app": " 42 "}
			},
			call: func(c *accesslog.APICall) {
				c.Method, c.Status, c.UserAgent, c.SourceIP = "POST", 404, "-", "[2001:db8::1]:443"
			},
			req: "POST /apigw/prod/users/42 HTTP/1.1\r\n" +
				"Host: <node>\r\n" +
				"Content-Length: 0\r\n" +
				"X-App: 42\r\n" +
				"X-Conn-Type: aws-apigw\r\n" +
				"X-Conn-Version: 9.9\r\n" +
				"X-Orig-Host: " + api + "\r\n" +
				"X-Real-Ip: 2001:db8::1\r\n" +
				"X-Req-Id: 465e33b3bcabaa5208a83ca0d6afe1e3\r\n" +
				"\r\n",
			res: "PUT /apigw/prod/users/42 HTTP/1.1\r\n" +
				"Host: <node>\r\n" +
				"Content-Length: 0\r\n" +
				"X-App: 42\r\n" +
				"X-Conn-Type: aws-apigw\r\n" +
				"X-Conn-Version: 9.9\r\n" +
				"X-Orig-Host: " + api + "\r\n" +
				"X-Real-Ip: 2001:db8::1\r\n" +
				"X-Req-Id: 465e33b3bcabaa5208a83ca0d6afe1e3\r\n" +
				"X-Status: 404\r\n" +
				"\r\n",
		},
		{
			name: "HEAD: no length on the request, none needed",
			call: func(c *accesslog.APICall) { c.Method, c.UserAgent, c.Path = "HEAD", "", "/a b/{id}" },
			req: "HEAD /a%20b/%7Bid%7D HTTP/1.1\r\n" +
				"Host: " + api + "\r\n" +
				"X-Wallarm-Connector-Type: apigw-connector\r\n" +
				"X-Wallarm-Connector-Version: 1.0.0-test\r\n" +
				"X-Wallarm-Forwarded-For: 203.0.113.7\r\n" +
				"X-Wallarm-Forwarded-Host: " + api + "\r\n" +
				"X-Wallarm-Request-Id: " + id + "\r\n" +
				"\r\n",
			res: "POST /a%20b/%7Bid%7D HTTP/1.1\r\n" +
				"Host: " + api + "\r\n" +
				"Content-Length: 0\r\n" +
				"X-Wallarm-Connector-Type: apigw-connector\r\n" +
				"X-Wallarm-Connector-Version: 1.0.0-test\r\n" +
				"X-Wallarm-Forwarded-For: 203.0.113.7\r\n" +
				"X-Wallarm-Forwarded-Host: " + api + "\r\n" +
				"X-Wallarm-Request-Id: " + id + "\r\n" +
				"X-Wallarm-Response-Code: 200\r\n" +
				"\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRawNode(t, nil)
			c, _ := testClient(t, srv.url(), tt.edit)
			call := sampleCall()
			if tt.call != nil {
				tt.call(call)
			}
			if err := c.Deliver(context.Background(), call); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			msgs := srv.messages()
			if len(msgs) != 2 {
				t.Fatalf("got %d messages, want 2: %q", len(msgs), msgs)
			}
			for i, want := range []string{tt.req, tt.res} {
				want = strings.ReplaceAll(want, "<node>", srv.host())
				if msgs[i] != want {
					t.Errorf("message %d bytes\n got %q\nwant %q", i, msgs[i], want)
				}
			}
		})
	}
}
