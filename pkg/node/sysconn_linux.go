package node

import (
	"io"
	"net"
	"os"
	"syscall"
)

// sysConn reads and writes a TCP connection to the node with raw system calls.
// Go's sockets are non-blocking (the netpoller waits for them), so a read or a
// write never blocks and needs none of what the runtime does around a system
// call that might: with entersyscall, each one wakes sysmon if it sleeps, and one
// that takes longer than sysmon's tick (a loopback write carries the receiver's
// TCP processing) may have its P handed to another thread. A busy connector paid
// both per message (replay against devnode: nanosleep per call fell from about
// 0.3 to 0.08, context switches from about 0.9 to 0.5). Deadlines and closing
// work as on the TCPConn (RawConn waits in the netpoller).
type sysConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

func newSysConn(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	return &sysConn{TCPConn: tc, rc: rc}
}

func (c *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, e := sysRead(fd, p)
			switch e {
			case 0:
				n = r
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // the netpoller waits for data (or the deadline)
			default:
				errno = e
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *sysConn) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, e := sysWrite(fd, p[n:])
			switch e {
			case 0:
				n += r
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // the socket's buffer is full: the netpoller waits
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = c.opError("write", errno)
	}
	return n, err
}

// opError is what net.TCPConn returns for a failed read or write, so errors are
// classified alike.
func (c *sysConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
