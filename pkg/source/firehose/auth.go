package firehose

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keyring holds the accepted access keys as SHA-256 digests: comparing
// fixed-length digests in constant time leaks neither a key's bytes nor its
// length, and the keys themselves are not kept in memory longer than needed.
type keyring struct {
	static [][sha256.Size]byte
	file   string
	log    *slog.Logger

	fileKeys atomic.Pointer[[][sha256.Size]byte]

	mu        sync.Mutex // serialises reloads
	checkedAt time.Time
	fileStamp fileStamp
	// checkEvery throttles stat calls on the request path.
	checkEvery time.Duration
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newKeyring(keys []string, file string, log *slog.Logger) (*keyring, error) {
	k := &keyring{file: file, log: log, checkEvery: time.Second}
	for _, s := range keys {
		if s = strings.TrimSpace(s); s != "" {
			k.static = append(k.static, sha256.Sum256([]byte(s)))
		}
	}
	empty := [][sha256.Size]byte{}
	k.fileKeys.Store(&empty)
	if file != "" {
		if err := k.reload(); err != nil {
			return nil, err
		}
		if len(k.static) == 0 && len(*k.fileKeys.Load()) == 0 {
			return nil, fmt.Errorf("read firehose.access_key_file %q: no key in it and firehose.access_keys is empty: write one key per line", file)
		}
	} else if len(k.static) == 0 {
		return nil, fmt.Errorf("firehose.access_keys is empty: set the delivery stream's access key (env APIGW_CONNECTOR_FIREHOSE_ACCESS_KEYS)")
	}
	return k, nil
}

// reload re-reads the key file if it changed. On error the previous keys stay.
func (k *keyring) reload() error {
	st, err := os.Stat(k.file)
	if err != nil {
		return fmt.Errorf("read firehose.access_key_file: %w", err)
	}
	stamp := fileStamp{mod: st.ModTime(), size: st.Size()}
	if stamp == k.fileStamp && k.fileKeys.Load() != nil && !k.checkedAt.IsZero() {
		return nil
	}
	b, err := os.ReadFile(k.file)
	if err != nil {
		return fmt.Errorf("read firehose.access_key_file: %w", err)
	}
	var keys [][sha256.Size]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, sha256.Sum256([]byte(line)))
	}
	clear(b)
	k.fileKeys.Store(&keys)
	k.fileStamp = stamp
	k.checkedAt = time.Now()
	return nil
}

// maybeReload re-reads the key file at most once per checkEvery.
func (k *keyring) maybeReload() {
	if k.file == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.checkedAt) < k.checkEvery {
		return
	}
	before := len(*k.fileKeys.Load())
	stamp := k.fileStamp
	if err := k.reload(); err != nil {
		k.log.Warn("keeping the previous Firehose access keys", "file", k.file, "err", err)
	} else if k.fileStamp != stamp {
		k.log.Info("reloaded Firehose access keys", "file", k.file, "keys_before", before, "keys", len(*k.fileKeys.Load()))
	}
	k.checkedAt = time.Now()
}

// match reports whether key is one of the accepted keys. It compares against
// every key, so the time taken does not tell which one (or whether any) matched.
func (k *keyring) match(key string) bool {
	k.maybeReload()
	d := sha256.Sum256([]byte(key))
	ok := 0
	for i := range k.static {
		ok |= subtle.ConstantTimeCompare(d[:], k.static[i][:])
	}
	for _, fk := range *k.fileKeys.Load() {
		ok |= subtle.ConstantTimeCompare(d[:], fk[:])
	}
	return ok == 1
}
