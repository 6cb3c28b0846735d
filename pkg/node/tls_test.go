package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSCustomCAAndClientCert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testkit.NewCA(t, "test node CA")
	srvCert, srvKey := ca.Issue(t, "node.test", x509.ExtKeyUsageServerAuth, []string{"node.test"}, nil)
	cliCert, cliKey := ca.Issue(t, "connector", x509.ExtKeyUsageClientAuth, nil, nil)
	other := testkit.NewCA(t, "someone else")

	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	clientPool := x509.NewCertPool()
	clientPool.AddCert(ca.Cert)
	var sawClient atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			sawClient.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
		MinVersion:   tls.VersionTLS12,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected below
	srv.StartTLS()
	t.Cleanup(srv.Close)

	caFile := writeFile(t, dir, "ca.pem", ca.PEM)
	otherCA := writeFile(t, dir, "other.pem", other.PEM)
	certFile := writeFile(t, dir, "client.pem", cliCert)
	keyFile := writeFile(t, dir, "client.key", cliKey)

	tests := []struct {
		name   string
		tls    TLSConfig
		wantOK bool
	}{
		{"custom CA, server name, client cert", TLSConfig{CAFile: caFile, ServerName: "node.test", CertFile: certFile, KeyFile: keyFile}, true},
		{"untrusted server", TLSConfig{CAFile: otherCA, ServerName: "node.test", CertFile: certFile, KeyFile: keyFile}, false},
		{"wrong server name", TLSConfig{CAFile: caFile, ServerName: "other.test", CertFile: certFile, KeyFile: keyFile}, false},
		{"no client cert", TLSConfig{CAFile: caFile, ServerName: "node.test"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, reg := testClient(t, srv.URL, func(c *Config) { c.TLS = tt.tls })
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := c.Deliver(ctx, sampleCall())
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Deliver over TLS: %v", err)
				}
				if cn, _ := sawClient.Load().(string); cn != "connector" {
					t.Errorf("server saw client certificate %q, want connector", cn)
				}
				return
			}
			// A TLS failure is a setup problem: retried (visible), never a silent drop.
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Deliver = %v, want to keep retrying until the context ends", err)
			}
			if v := metricValue(t, reg, "apigw_connector_node_errors_total", map[string]string{"reason": "tls"}); v < 1 {
				t.Errorf("errors_total{reason=tls} = %v, want >= 1", v)
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "junk.pem", []byte("not a certificate"))
	tests := []struct {
		name string
		tls  TLSConfig
	}{
		{"missing CA file", TLSConfig{CAFile: filepath.Join(dir, "absent.pem")}},
		{"CA file without PEM", TLSConfig{CAFile: notPEM}},
		{"bad key pair", TLSConfig{CertFile: notPEM, KeyFile: notPEM}},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.URL = "https://127.0.0.1:1"
		cfg.TLS = tt.tls
		if _, err := New(cfg, nil, nil); err == nil {
			t.Errorf("%s: New = nil error", tt.name)
		}
	}
}
