//go:build !windows

package pgsession

import (
	"net"
	"syscall"
)

// peeker looks at a socket without reading from it or blocking. Its raw
// connection and callback are made once, so a look allocates nothing.
type peeker struct {
	rc  syscall.RawConn // nil: cannot look
	fn  func(fd uintptr)
	res peekResult
	buf [1]byte
}

func newPeeker(conn net.Conn) *peeker {
	p := &peeker{}
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.fn = func(fd uintptr) {
		// A peek takes nothing from the stream.
		n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			p.res = peekEOF
		case err == nil && n > 0:
			p.res = peekData
		}
	}
	return p
}

// peek reports what waits on the socket. Control, not Read: it takes no read lock,
// so a read another goroutine has under way (pgconn's background reader) never
// makes this wait. Callers do not peek one session concurrently (database/sql and
// pgxpool check a session that nobody holds).
func (p *peeker) peek() peekResult {
	if p.rc == nil {
		return peekNothing
	}
	p.res = peekNothing
	if p.rc.Control(p.fn) != nil {
		return peekNothing
	}
	return p.res
}
