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
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			res = peekEOF
		case err == nil && n > 0:
			res = peekData
		}
		return true // never wait
	})
	return res
}
