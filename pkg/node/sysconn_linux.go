package node

import (
	"io"
	"net"
	"os"
	"sync"
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
	// One read and one write at a time (the read loop and the connection's one
	// writer; a TLS conn on top serializes each direction too): their callbacks
	// are made once here, as a closure per call would cost an allocation per
	// system call.
	rmu, wmu sync.Mutex
	rd, wr   rawOp
}

// rawOp is one direction's system call in progress: its buffer and outcome.
type rawOp struct {
	p     []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
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
	c := &sysConn{TCPConn: tc, rc: rc}
	c.rd.fn, c.wr.fn = c.rd.read, c.wr.write
	return c
}

func (c *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	n, errno, err := c.raw(&c.rd, p, false)
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

// read is one read(2) into op.p: false while none is ready (the netpoller waits
// for data or the deadline).
func (op *rawOp) read(fd uintptr) bool {
	for {
		r, e := sysRead(fd, op.p)
		switch e {
		case 0:
			op.n = r
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			op.errno = e
			return true
		}
	}
}

func (c *sysConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, errno, err := c.raw(&c.wr, p, true)
	if err == nil && errno != 0 {
		err = c.opError("write", errno)
	}
	return n, err
}

// write writes all of op.p: false while the socket's buffer is full (the
// netpoller waits for room or the deadline).
func (op *rawOp) write(fd uintptr) bool {
	for op.n < len(op.p) {
		r, e := sysWrite(fd, op.p[op.n:])
		switch e {
		case 0:
			op.n += r
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			op.errno = e
			return true
		}
	}
	return true
}

// raw runs op's system call on p through the RawConn (which waits in the
// netpoller while op reports false).
func (c *sysConn) raw(op *rawOp, p []byte, write bool) (int, syscall.Errno, error) {
	op.p, op.n, op.errno = p, 0, 0
	var err error
	if write {
		err = c.rc.Write(op.fn)
	} else {
		err = c.rc.Read(op.fn)
	}
	n, errno := op.n, op.errno
	op.p = nil // the caller's buffer is not kept
	return n, errno, err
}

// opError is what net.TCPConn returns for a failed read or write, so errors are
// classified alike.
func (c *sysConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
