package lakebase_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lakebase-go/lakebase/internal/testca"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// What an attacker who can write the settings store controls is the file's
// contents. These tests tamper with it and show that no secret follows what was
// written there.

// editStore applies edit to the settings file's JSON document.
func editStore(t *testing.T, file string, edit func(doc map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// entries returns the entries of the store's map name (each a JSON object).
func entries(doc map[string]any, name string) map[string]map[string]any {
	out := map[string]map[string]any{}
	m, _ := doc[name].(map[string]any)
	for k, v := range m {
		if e, ok := v.(map[string]any); ok {
			out[k] = e
		}
	}
	return out
}

// recordingHTTP is an HTTP server that answers 404 to everything and records
// every request it was sent (the path and whether it carried credentials).
type recordingHTTP struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecordingHTTP(t *testing.T) *recordingHTTP {
	r := &recordingHTTP{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.seen = append(r.seen, req.Method+" "+req.URL.Path+" auth="+strconv.FormatBool(req.Header.Get("Authorization") != "")+
			" body="+strconv.Itoa(len(body)))
		r.mu.Unlock()
		http.NotFound(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recordingHTTP) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// fakePostgres is a Postgres front door on loopback that takes TLS with a
// certificate of its own CA (which nobody trusts), asks for a cleartext password
// and records every password it is sent.
type fakePostgres struct {
	ln        net.Listener
	mu        sync.Mutex
	conns     int
	passwords []string
}

func newFakePostgres(t *testing.T) *fakePostgres {
	t.Helper()
	ca, err := testca.New("not the workspace's CA")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := ca.TLSConfig("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePostgres{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			go f.serve(c, tc)
		}
	}()
	return f
}

func (f *fakePostgres) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *fakePostgres) serve(c net.Conn, tc *tls.Config) {
	defer c.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || binary.BigEndian.Uint32(hdr[4:]) != 80877103 {
		return // not an SSLRequest
	}
	c.Write([]byte{'S'})
	tlsConn := tls.Server(c, tc)
	if err := tlsConn.Handshake(); err != nil {
		return
	}
	r := bufio.NewReader(tlsConn)
	if _, err := io.ReadFull(r, hdr[:4]); err != nil { // the startup message
		return
	}
	if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(hdr[:4]))-4); err != nil {
		return
	}
	tlsConn.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3}) // AuthenticationCleartextPassword
	typ, err := r.ReadByte()
	if err != nil || typ != 'p' {
		return
	}
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return
	}
	pw := make([]byte, int(binary.BigEndian.Uint32(hdr[:4]))-4)
	if _, err := io.ReadFull(r, pw); err != nil {
		return
	}
	f.mu.Lock()
	f.passwords = append(f.passwords, strings.TrimRight(string(pw), "\x00"))
	f.mu.Unlock()
	// SQLSTATE 28P01, as a real server answers a password it does not take.
	msg := []byte("SFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00")
	out := append([]byte{'E', 0, 0, 0, 0}, msg...)
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)+4))
	tlsConn.Write(out)
}

func (f *fakePostgres) got() (conns int, passwords []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns, append([]string(nil), f.passwords...)
}

// A store whose host metadata names another OIDC endpoint: the next process that
// needs a workspace token fetches it where the workspace's own origin says, and
// the client secret never goes to the endpoint the store names.
func TestSettingsStore_TamperedOIDCEndpointNeverGetsTheClientSecret(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{UnifiedHost: true})
	evil := newRecordingHTTP(t)
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := e.OAuthClientDSN("OAuthSettingsLocation=" + store)
	first, _ := newDB(t, dsn)
	if err := first.Ping(); err != nil {
		t.Fatal(err)
	}
	first.Close()

	var access []string
	editStore(t, store, func(doc map[string]any) {
		metas := entries(doc, "host_metadata")
		if len(metas) == 0 {
			t.Fatal("the store has no host metadata: the test proves nothing")
		}
		for _, m := range metas {
			m["oidc_endpoint"] = evil.URL + "/oidc"
		}
		for _, tok := range entries(doc, "tokens") {
			access = append(access, tok["access_token"].(string))
		}
		delete(doc, "credentials") // the next process mints, with the stored token
	})
	// The stored token is refused at its first use: the next process must fetch a
	// new one with the client secret.
	for _, a := range access {
		e.Revoke(a)
	}
	e.ResetCounts()

	db, _ := newDB(t, dsn)
	if err := db.Ping(); err != nil {
		t.Fatalf("the login did not work after the store was tampered with: %v", err)
	}
	if got := evil.requests(); len(got) != 0 {
		t.Fatalf("the OIDC endpoint named by the store was sent %d requests: %q", len(got), got)
	}
	if e.Count(lakebasetest.EPToken) == 0 {
		t.Fatal("no workspace token was fetched: the test proves nothing")
	}
}

// A store whose host lookup names another Postgres host: under the default
// SSLMode=require the next process asks the workspace where the database is before
// it sends a credential, and the host the store names gets no connection at all.
func TestSettingsStore_TamperedHostLookupNeverGetsTheCredential(t *testing.T) {
	needServers(t)
	for name, mint := range map[string]bool{"stored credential": false, "fresh credential": true} {
		t.Run(name, func(t *testing.T) {
			e := lakebasetest.Start(t)
			evil := newFakePostgres(t)
			store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
			dsn := e.OAuthClientDSN("OAuthSettingsLocation="+store, "SSLMode=require", "SSLServerCert=")
			first, _ := newDB(t, dsn)
			if err := first.Ping(); err != nil {
				t.Fatal(err)
			}
			first.Close()
			editStore(t, store, func(doc map[string]any) {
				lookups := entries(doc, "lookups")
				if len(lookups) == 0 {
					t.Fatal("the store has no host lookup: the test proves nothing")
				}
				for _, l := range lookups {
					l["host"] = "127.0.0.1:" + strconv.Itoa(evil.port())
				}
				if mint {
					delete(doc, "credentials")
				}
			})

			db, c := newDB(t, dsn)
			li, err := c.Login(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if li.Host == "127.0.0.1" && li.Port == evil.port() {
				t.Fatalf("the login names the host of the tampered store entry: %s:%d", li.Host, li.Port)
			}
			if err := db.Ping(); err != nil {
				t.Fatalf("the login did not work after the store was tampered with: %v", err)
			}
			if conns, pws := evil.got(); conns != 0 || len(pws) != 0 {
				t.Fatalf("the host named by the store got %d connections and %d passwords", conns, len(pws))
			}
			// The store names the workspace's host again.
			data, _ := os.ReadFile(store)
			if strings.Contains(string(data), "127.0.0.1:"+strconv.Itoa(evil.port())) {
				t.Fatal("the tampered host lookup is still in the store")
			}
		})
	}
}

// With SSLMode=verify-full a stored host is used without asking the workspace (the
// certificate proves the name): a warm restart makes no request. A tampered host
// then fails its certificate check before any password is sent, and the login looks
// the database up again and works.
func TestSettingsStore_TamperedHostLookupUnderVerifyFullGetsNoPassword(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	evil := newFakePostgres(t)
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := e.OAuthClientDSN("OAuthSettingsLocation=" + store) // verify-full with the emulator's CA
	first, _ := newDB(t, dsn)
	if err := first.Ping(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	e.ResetCounts()
	warm, _ := newDB(t, dsn)
	if err := warm.Ping(); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	if n := workspaceRequests(e); n != 0 {
		t.Fatalf("a warm restart under verify-full made %d workspace requests", n)
	}

	editStore(t, store, func(doc map[string]any) {
		for _, l := range entries(doc, "lookups") {
			l["host"] = "localhost:" + strconv.Itoa(evil.port())
		}
	})
	db, _ := newDB(t, dsn)
	if err := db.Ping(); err != nil {
		t.Fatalf("the login did not recover from the tampered store entry: %v", err)
	}
	if _, pws := evil.got(); len(pws) != 0 {
		t.Fatalf("the host named by the store was sent %d passwords", len(pws))
	}
	if conns, _ := evil.got(); conns == 0 {
		t.Fatal("the tampered host was never tried: the test proves nothing")
	}
	var u string
	if err := db.QueryRow("SELECT current_user").Scan(&u); err != nil || u != e.ServicePrincipal.ClientID {
		t.Fatalf("current_user %q: %v", u, err)
	}
}
