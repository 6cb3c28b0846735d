package firehose

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns it.
func writeCert(t *testing.T, certFile, keyFile, cn string, mod time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := x509.ParseCertificate(der)
	return c
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
