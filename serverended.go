package lakebase

import (
	"crypto/tls"

	"github.com/jackc/pgx/v5/pgconn"
)

// serverEnded reports, without sending anything and without waiting, whether the
// server has ended an idle session: its socket has data waiting (an idle session
// is sent nothing but the error of its end, a notice or a notification, which
// pgconn then reads) and pgconn finds it closed, or the socket is at its end.
func serverEnded(pc *pgconn.PgConn) bool {
	if pc == nil || pc.IsClosed() {
		return pc != nil
	}
	if pc.IsBusy() {
		return false // a read or write under way is pgx's to finish
	}
	// The peeker is made once per session and kept with it: a look allocates nothing.
	pk, _ := pc.CustomData()[peekerKey].(*peeker)
	if pk == nil {
		conn := pc.Conn()
		if tc, ok := conn.(*tls.Conn); ok {
			conn = tc.NetConn()
		}
		pk = newPeeker(conn)
		pc.CustomData()[peekerKey] = pk
	}
	switch pk.peek() {
	case peekEOF:
		return true
	case peekData:
		pc.CheckConn() // reads what waits: a FATAL closes the connection
		return pc.IsClosed() || pk.peek() == peekEOF
	}
	return false
}

// peekerKey holds a session's peeker in its pgconn CustomData.
const peekerKey = "lakebase.peeker"

type peekResult int

const (
	peekNothing peekResult = iota // alive, nothing waiting (or cannot tell)
	peekData                      // bytes are waiting
	peekEOF                       // the peer closed the socket
)
