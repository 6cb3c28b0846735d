package firehose

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

// writeCert writes a certificate for 127.0.0.1 and its key, both dated mod,
// and returns the CA (named cn) that issued it.
func writeCert(t *testing.T, certFile, keyFile, cn string, mod time.Time) *x509.Certificate {
	t.Helper()
	ca := testkit.NewCA(t, cn)
	certPEM, keyPEM := ca.Issue(t, cn, x509.ExtKeyUsageServerAuth, nil, []net.IP{net.ParseIP("127.0.0.1")})
	for f, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	return ca.Cert
}

func TestTLSCertificateIsReloaded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, "first", time.Now().Add(-time.Hour))
	cfg := testConfig()
	cfg.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile}
	e := newEnv(t, cfg)
	e.rcv.certs.mu.Lock()
	e.rcv.certs.checkEvery = 0
	e.rcv.certs.mu.Unlock()

	serverCN := func(root *x509.Certificate) (string, int) {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AddCert(root)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		e.hc.Transport = tr
		recs, _ := gen(11, 1, 1)
		r := e.post(delivery{id: "req-tls-" + root.Subject.CommonName, records: recs})
		return root.Subject.CommonName, r.status
	}
	if cn, status := serverCN(first); status != http.StatusOK {
		t.Fatalf("over TLS with %s: status %d", cn, status)
	}
	second := writeCert(t, certFile, keyFile, "second", time.Now())
	if cn, status := serverCN(second); status != http.StatusOK {
		t.Fatalf("over TLS after renewal with %s: status %d", cn, status)
	}
}
