//go:build linux || darwin || freebsd || netbsd || openbsd

package node

import (
	"crypto/tls"
	"syscall"
)

// initPeek prepares wc.readable: a non-blocking MSG_PEEK on the socket, a single
// syscall with no goroutine and, once built, no allocation.
func (wc *wconn) initPeek() {
	nc := wc.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	wc.rc = rc
	// Control, not Read: Read would refuse once the last exchange's deadline passed.
	wc.peekFn = func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), wc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Data (n > 0), EOF (n == 0, no error) and errors but "nothing yet"
		// all mean the connection cannot carry a clean exchange.
		wc.peekHit = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR
	}
}

// readable reports whether an idle connection has bytes or EOF waiting: a reply
// nobody asked for or the node's close. Either way it must not be reused.
func (wc *wconn) readable() bool {
	if wc.br.Buffered() > 0 {
		return true
	}
	if wc.rc == nil {
		return false
	}
	if err := wc.rc.Control(wc.peekFn); err != nil {
		return true
	}
	return wc.peekHit
}
