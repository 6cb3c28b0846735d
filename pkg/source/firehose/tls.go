package firehose

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in CertFile/KeyFile and re-reads them
// when either changes (checked at most once per checkEvery, on handshakes), so
// a renewed certificate is picked up without a restart. A broken renewal
// keeps the previous certificate and logs.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	checkEvery        time.Duration

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp
	checkedAt time.Time
}

func newCertReloader(c TLSConfig, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: c.CertFile, keyFile: c.KeyFile, log: log, checkEvery: 10 * time.Second}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{mod: st.ModTime(), size: st.Size()}
	}
	return s, nil
}

// load reads the pair; callers hold mu (or own r exclusively).
func (r *certReloader) load() error {
	s, err := r.stamps()
	if err != nil {
		return fmt.Errorf("load firehose.tls certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load firehose.tls certificate: %w: set firehose.tls.cert_file and key_file to a PEM certificate and its key", err)
	}
	r.cert, r.stamp, r.checkedAt = &cert, s, time.Now()
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checkedAt) >= r.checkEvery {
		r.checkedAt = time.Now()
		if s, err := r.stamps(); err != nil {
			r.log.Warn("keeping the previous TLS certificate", "cert_file", r.certFile, "err", err)
		} else if s != r.stamp {
			if err := r.load(); err != nil {
				r.stamp = s // do not retry a broken pair on every handshake; wait for the next change
				r.log.Warn("keeping the previous TLS certificate", "cert_file", r.certFile, "err", err)
			} else {
				r.log.Info("reloaded TLS certificate", "cert_file", r.certFile)
			}
		}
	}
	return r.cert, nil
}
