//go:build race

package node

import "syscall"

// Under the race detector sysRead and sysWrite go through package syscall,
// whose Read and Write tell the detector that a write on one socket happens
// before the read of it on the other end; raw system calls would hide that
// edge and make tests that read what a server recorded look racy.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errnoOf(err)
}

// errnoOf is err's errno: package syscall returns a bare Errno (a type switch
// rather than errors.As, whose target would be an allocation per EAGAIN).
func errnoOf(err error) syscall.Errno {
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	if err != nil {
		return syscall.EIO
	}
	return 0
}
