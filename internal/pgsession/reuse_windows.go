//go:build windows

package pgsession

import "net"

// peeker cannot look at a socket without reading it here; pgx's own liveness
// check (a ping after a second idle) applies.
type peeker struct{}

func newPeeker(net.Conn) *peeker { return &peeker{} }
func (*peeker) peek() peekResult { return peekNothing }
