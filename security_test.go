package lakebase_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSecurity_NoPlaintextFallback: a server that declines TLS never gets a password.
func TestSecurity_NoPlaintextFallback(t *testing.T) {
	needServers(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 8)
				if _, err := c.Read(buf); err != nil {
					return
				}
				c.Write([]byte{'N'}) // "no TLS here"
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				rest := make([]byte, 4096)
				n, _ := c.Read(rest)
				got <- rest[:n]
			}()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	for _, mode := range []string{"require", "verify-ca", "verify-full"} {
		db, _ := newDB(t, emu.OAuthClientDSN("Server=127.0.0.1", fmt.Sprintf("Port=%d", port), "SSLMode="+mode, "Timeout=5"))
		if err := db.Ping(); err == nil {
			t.Fatalf("%s: connected to a server without TLS", mode)
		}
		select {
		case b := <-got:
			if len(b) > 0 {
				t.Fatalf("%s: the driver sent %d bytes in clear text after TLS was declined", mode, len(b))
			}
		case <-time.After(5 * time.Second):
		}
	}
}

func TestSecurity_PKCEIsS256Only(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthPKCEDSN("OAuthSettingsLocation=memory://s256"))
	var r authURLRow
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&r.URL, &r.State, &r.Verifier); err != nil {
		t.Fatal(err)
	}
	checkAuthURL(t, r, "http://localhost:8020")
	if strings.Contains(r.URL, "plain") || strings.Contains(r.URL, r.Verifier) {
		t.Fatal("the authorization URL offers plain PKCE or holds the verifier")
	}
}
