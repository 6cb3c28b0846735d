// Package devnodetest starts devnode for a test: in process, on a free
// loopback port, shut down when the test ends. It imports nothing of this
// module but pkg/devnode, so that the tests of packages internal/testenv
// itself imports (pkg/node) can use it too.
package devnodetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/pkg/devnode"
)

// Start runs a devnode with o on 127.0.0.1 and returns it with its base URL
// (http://127.0.0.1:PORT). It fails the test when devnode cannot listen.
func Start(t testing.TB, o devnode.Options) (*devnode.Server, string) {
	t.Helper()
	dn := devnode.New(o, nil, slog.New(slog.DiscardHandler))
	addr, err := dn.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start devnode: %v", err)
	}
	t.Cleanup(func() {
		// Bounded: a reply held by Latency must not hold up the test's end.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = dn.Shutdown(ctx)
	})
	return dn, "http://" + addr.String()
}
