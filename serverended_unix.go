//go:build !windows

package lakebase

import (
	"net"
	"syscall"
)

// peekIdle looks at a socket without reading from it or blocking.
func peekIdle(conn net.Conn) peekResult {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return peekNothing
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekNothing
	}
	res := peekNothing
	var buf [1]byte
	// Control, not Read: it takes no read lock, so a read another goroutine has
	// under way (pgconn's background reader) never makes this wait. A peek takes
	// nothing from the stream.
	rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			res = peekEOF
		case err == nil && n > 0:
			res = peekData
		}
	})
	return res
}
