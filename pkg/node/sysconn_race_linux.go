//go:build race

package node

import (
	"errors"
	"syscall"
)

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

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}
