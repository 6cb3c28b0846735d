//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package node

// initPeek has no non-blocking peek on this platform.
func (wc *wconn) initPeek() {}

// readable reports only bytes already buffered: without a socket peek, a stale
// reply that arrives while idle is not seen before reuse.
func (wc *wconn) readable() bool { return wc.br.Buffered() > 0 }
