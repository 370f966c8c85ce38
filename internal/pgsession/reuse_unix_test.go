//go:build !windows

package pgsession

import (
	"net"
	"runtime"
	"testing"
)

// loopbackPair returns the two ends of a TCP connection on the loopback address.
func loopbackPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// The look at a socket tells nothing waiting, bytes waiting and the peer's end
// apart, and takes nothing from the stream.
func TestPeeker_TellsNothingDataAndEndApart(t *testing.T) {
	client, server := loopbackPair(t)
	pk := newPeeker(client)
	if got := pk.peek(); got != peekNothing {
		t.Fatalf("idle socket: %v, want nothing waiting", got)
	}
	if _, err := server.Write([]byte("E")); err != nil {
		t.Fatal(err)
	}
	// The byte arrives asynchronously: wait for the condition, not for a time.
	for pk.peek() != peekData {
		runtime.Gosched()
	}
	if pk.peek() != peekData {
		t.Fatal("a second look no longer sees the byte: the look consumed it")
	}
	buf := make([]byte, 1)
	if n, err := client.Read(buf); n != 1 || buf[0] != 'E' {
		t.Fatalf("read %q, %v after the looks, want the byte they saw", buf[:n], err)
	}
	server.Close()
	for pk.peek() != peekEOF {
		runtime.Gosched()
	}
}

// BenchmarkPeek measures the look alone (allocations reported per look: the goal
// is none), with nothing else counted.
func BenchmarkPeek(b *testing.B) {
	client, _ := loopbackPair(b)
	pk := newPeeker(client)
	b.ReportAllocs()
	for b.Loop() {
		if pk.peek() != peekNothing {
			b.Fatal("unexpected data")
		}
	}
}
