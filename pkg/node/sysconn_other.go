//go:build !linux

package node

import "net"

func newSysConn(nc net.Conn) net.Conn { return nc }
