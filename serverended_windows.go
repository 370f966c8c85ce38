//go:build windows

package lakebase

import "net"

// peekIdle cannot look at a socket without reading it here; pgx's own liveness
// check (a ping after a second idle) applies.
func peekIdle(net.Conn) peekResult { return peekNothing }
