package lakebasetest

import (
	"github.com/lakebase-go/lakebase/internal/pgcluster"

	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Postgres wire-protocol codes of the startup packets.
const (
	codeProtocol3 = 196608
	codeSSL       = 80877103
	codeGSSENC    = 80877104
	codeCancel    = 80877102
)

// frontDoor is the emulator's Postgres listener: TLS only, a cleartext password that
// must be a live database credential for the user (or a native password), then a raw
// relay to the real PostgreSQL.
type frontDoor struct {
	s  *Server
	ln net.Listener
	wg sync.WaitGroup
	// pooled makes this the endpoint's pooled host: sessions go to the PgBouncer in
	// transaction mode, not straight to PostgreSQL, and the compute's connection
	// limit is the pooler's to keep.
	pooled bool

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
}

type session struct {
	client, backend net.Conn
	lim             *sessionLimits // set once the session is relayed
}

func (s *session) close() {
	s.client.Close()
	if s.backend != nil {
		s.backend.Close()
	}
}

func newFrontDoor(s *Server, pooled bool, port int) (*frontDoor, error) {
	what := "the Postgres front door (PGPort, -pg-port)"
	if pooled {
		what = "the pooled host (PooledPort, -pooled-port)"
	}
	ln, err := listenLoopback(port, what)
	if err != nil {
		return nil, err
	}
	fd := &frontDoor{s: s, ln: ln, pooled: pooled, sessions: map[*session]struct{}{}}
	fd.wg.Add(1)
	go fd.serve()
	return fd, nil
}

// listenLoopback listens on 127.0.0.1:port (0: a free port); what names the
// listener in the error of a port that is taken.
func listenLoopback(port int, what string) (net.Listener, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("lakebasetest: port %d of %s: want 0 to 65535", port, what)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("lakebasetest: %s cannot listen on 127.0.0.1:%d (taken by another program?): %w", what, port, err)
	}
	return ln, nil
}

func (fd *frontDoor) port() int { return fd.ln.Addr().(*net.TCPAddr).Port }

func (fd *frontDoor) serve() {
	defer fd.wg.Done()
	for {
		c, err := fd.ln.Accept()
		if err != nil {
			return
		}
		ss := &session{client: c}
		if !fd.track(ss) {
			c.Close()
			return
		}
		fd.wg.Add(1)
		go func() {
			defer fd.wg.Done()
			defer fd.untrack(ss)
			defer ss.close()
			fd.handle(ss)
		}()
	}
}

func (fd *frontDoor) track(ss *session) bool {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if fd.closed {
		return false
	}
	fd.sessions[ss] = struct{}{}
	return true
}

func (fd *frontDoor) untrack(ss *session) {
	fd.mu.Lock()
	delete(fd.sessions, ss)
	fd.mu.Unlock()
}

// relayed counts the sessions relayed to PostgreSQL now.
func (fd *frontDoor) relayed() int {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	n := 0
	for ss := range fd.sessions {
		if ss.backend != nil {
			n++
		}
	}
	return n
}

// endAll ends every relayed session with FATAL 57P01, as the service does for a
// restart. A session still logging in is left to finish its login: admit answers
// it 57P03 while the compute is down, and one admitted a moment before meets
// PostgreSQL's own shutdown (57P01 or 57P03) or its absence (57P03).
func (fd *frontDoor) endAll(why string) {
	fd.mu.Lock()
	var ending []*sessionLimits
	for ss := range fd.sessions {
		if ss.lim != nil {
			ending = append(ending, ss.lim)
		}
	}
	fd.mu.Unlock()
	for _, l := range ending {
		if l.end(why) {
			fd.s.count(EPSessionKilled)
		}
	}
}

func (fd *frontDoor) dropAll() {
	fd.mu.Lock()
	for ss := range fd.sessions {
		ss.close()
	}
	fd.mu.Unlock()
}

func (fd *frontDoor) close() {
	fd.mu.Lock()
	fd.closed = true
	fd.mu.Unlock()
	fd.ln.Close()
	fd.dropAll()
	fd.wg.Wait()
}

// readStartup reads one startup packet: its code and the bytes after the code.
func readStartup(r io.Reader) (uint32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 || n > 10000 {
		return 0, nil, fmt.Errorf("bad startup packet length %d", n)
	}
	body := make([]byte, n-8)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(hdr[4:]), body, nil
}

func parseParams(body []byte) map[string]string {
	out := map[string]string{}
	parts := bytes.Split(body, []byte{0})
	for i := 0; i+1 < len(parts); i += 2 {
		if len(parts[i]) == 0 {
			break
		}
		out[string(parts[i])] = string(parts[i+1])
	}
	return out
}

func writeError(w io.Writer, code, msg string) {
	var b bytes.Buffer
	for _, f := range []struct {
		t byte
		v string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', code}, {'M', msg}} {
		b.WriteByte(f.t)
		b.WriteString(f.v)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	msgb := make([]byte, 5, 5+b.Len())
	msgb[0] = 'E'
	binary.BigEndian.PutUint32(msgb[1:], uint32(4+b.Len()))
	w.Write(append(msgb, b.Bytes()...))
}

func (fd *frontDoor) handle(ss *session) {
	var conn net.Conn = ss.client
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	code, body, err := readStartup(conn)
	if err != nil {
		return
	}
	if code == codeCancel {
		fd.relayCancel(code, body)
		return
	}
	if code == codeGSSENC {
		conn.Write([]byte{'N'})
		if code, body, err = readStartup(conn); err != nil {
			return
		}
	}
	if code != codeSSL {
		if code == codeProtocol3 {
			p := parseParams(body)
			writeError(conn, "28000", fmt.Sprintf("pg_hba.conf rejects connection for host %q, user %q, database %q, no encryption",
				hostOf(conn.RemoteAddr()), p["user"], p["database"]))
		}
		fd.s.count(EPLoginRefused)
		return
	}
	conn.Write([]byte{'S'})
	tc := tls.Server(conn, fd.s.tlsConf)
	if err := tc.Handshake(); err != nil {
		return
	}
	fd.mu.Lock() // dropAll reads ss.client
	ss.client = tc
	fd.mu.Unlock()
	conn = tc
	code, body, err = readStartup(conn)
	if err == nil && code == codeCancel {
		fd.relayCancel(code, body) // pgx encrypts cancel requests like the session
		return
	}
	if err != nil || code != codeProtocol3 {
		if err == nil {
			writeError(conn, "08P01", "unsupported frontend protocol")
		}
		return
	}
	params := parseParams(body)
	user := params["user"]
	if reason := fd.s.admit(); reason != "" {
		// A suspended endpoint wakes on connect; until then it refuses sessions.
		fd.s.logf("frontdoor: %s", reason)
		fd.s.count(EPNotReady)
		writeError(conn, "57P03", reason)
		return
	}
	defer fd.s.leave()
	// Reached through the read-only host (an IP address, so no SNI): a replica.
	readOnly := tc.ConnectionState().ServerName == ""
	// Ask for the password in clear text (inside TLS), as Lakebase does.
	conn.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
	br := bufio.NewReader(conn)
	pw, err := readPassword(br)
	if err != nil {
		return
	}
	if reason := fd.s.checkLogin(user, pw); reason != "" {
		fd.s.count(EPLoginRefused)
		fd.s.logf("frontdoor: refused %s: %s", user, reason)
		writeError(conn, "28P01", fmt.Sprintf("password authentication failed for user %q", user))
		return
	}
	// The credential's claims (nil for a native password), read once.
	c, err := fd.s.parseJWT(pw)
	if err != nil {
		c = nil
	}
	if c != nil && c.Endpoint != "" && c.Endpoint != fd.s.Endpoint && fd.s.branchDatabase(c.Endpoint) == "" {
		// The endpoint is gone (its branch was deleted or expired): its sessions must
		// never reach another branch's database.
		fd.s.count(EPLoginRefused)
		fd.s.logf("frontdoor: refused %s: endpoint %s does not exist", user, c.Endpoint)
		writeError(conn, "28000", fmt.Sprintf("endpoint %s does not exist or is not available", c.Endpoint))
		return
	}
	if fd.pooled {
		fd.relayPooled(ss, conn, br, params, pw, c, readOnly)
		return
	}
	pg := fd.s.pg
	if c != nil && params["database"] == fd.s.Database {
		if db := fd.s.branchDatabase(c.Endpoint); db != "" {
			pg = fd.s.clusterOf(c.Endpoint)
			if fd.s.branchTooNew(c.Endpoint) {
				fd.s.count(EPLoginRefused)
				writeError(conn, "28P01", fmt.Sprintf("password authentication failed for user %q", user))
				return
			}
			params["database"] = db // the session goes to its endpoint's branch
		}
	}
	if fd.s.opts.AutoCreateRoles {
		fd.s.mu.Lock()
		has := fd.s.roles[user]
		fd.s.mu.Unlock()
		if !has {
			if err := fd.s.CreateRole(user); err != nil {
				writeError(conn, "XX000", "could not create role")
				return
			}
		}
	}
	if !pg.HasLoginRole(user) {
		fd.refuseNoRole(conn, user)
		return
	}
	if c != nil && c.Scoped != nil {
		// A scoped credential: logged in as a role that may only read its tables.
		role, err := fd.s.scopeRole(pg, params["database"], user, c.Scoped)
		if err != nil {
			writeError(conn, "XX000", "could not apply the credential's scope")
			return
		}
		params["user"] = role
	}
	if max := fd.s.opts.MaxConnections; max > 0 && fd.relayed() >= max {
		// (The pooled host keeps its own limit, as the real pooler does.)
		// The compute's connection limit, as PostgreSQL answers it.
		fd.s.count(EPLoginRefused)
		writeError(conn, "53300", "sorry, too many clients already")
		return
	}
	network, addr := pg.RelayAddr()
	if readOnly {
		// The read-only host is the cluster's hot standby, as a replica is: it refuses
		// writes whatever the session sets.
		sb, err := fd.s.replicaOf(pg, c != nil && c.Scoped != nil)
		switch {
		case errors.Is(err, pgcluster.ErrNoStandby):
			// An external server (LAKEBASE_TEST_POSTGRES) has none: read-only sessions,
			// which a session can set read-write.
			params["options"] = strings.TrimSpace(params["options"] + " -c default_transaction_read_only=on")
		case err != nil:
			fd.s.logf("frontdoor: the read replica: %v", err)
			writeError(conn, "57P03", "the read replica is not available")
			return
		default:
			network, addr = sb.RelayAddr()
		}
	}
	fd.relay(ss, conn, br, network, addr, params, "")
}

// replicaOf returns the hot standby of pg, starting it on first use; with caughtUp,
// once it has replayed all pg has written (a scope role just made).
func (s *Server) replicaOf(pg *pgcluster.Cluster, caughtUp bool) (*pgcluster.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := pg.Standby(ctx)
	if err == nil && caughtUp {
		err = pg.CatchUp(ctx)
	}
	return sb, err
}

// relayPooled sends a session to the pooler: the main branch's database (the
// pooled host is the main endpoint's), read-only through the read-only pooled host.
// The pooler asks for the password itself when it checks native passwords.
func (fd *frontDoor) relayPooled(ss *session, conn net.Conn, br *bufio.Reader, params map[string]string, pw string, c *tokenClaims, readOnly bool) {
	if c != nil && c.Endpoint != "" && c.Endpoint != fd.s.Endpoint {
		fd.s.count(EPLoginRefused)
		writeError(conn, "28000", fmt.Sprintf("endpoint %s is not served by this host", c.Endpoint))
		return
	}
	if !fd.s.pg.HasLoginRole(params["user"]) {
		fd.refuseNoRole(conn, params["user"])
		return
	}
	if c != nil && c.Scoped != nil {
		// A scoped credential: the pooler's sessions are the scope role's, as on the
		// direct host.
		role, err := fd.s.scopeRole(fd.s.pg, fd.s.Database, params["user"], c.Scoped)
		if err != nil {
			writeError(conn, "XX000", "could not apply the credential's scope")
			return
		}
		params["user"] = role
	}
	if readOnly && params["database"] == fd.s.Database {
		// The pooler's read-only database is the main cluster's hot standby.
		if _, err := fd.s.replicaOf(fd.s.pg, c != nil && c.Scoped != nil); err != nil {
			fd.s.logf("frontdoor: the read replica: %v", err)
			writeError(conn, "57P03", "the read replica is not available")
			return
		}
		params["database"] = readOnlyPoolDB(fd.s.Database)
	}
	fd.s.count(EPPooledLogin)
	network, addr := fd.s.pooler.Addr()
	fd.relay(ss, conn, br, network, addr, params, pw)
}

// refuseNoRole answers a login of an identity without a Postgres role exactly as
// Lakebase does: as a wrong password.
func (fd *frontDoor) refuseNoRole(conn net.Conn, user string) {
	fd.s.count(EPLoginRefused)
	fd.s.count(EPNoRole)
	fd.s.logf("frontdoor: refused %s: no Postgres role", user)
	writeError(conn, "28P01", fmt.Sprintf("password authentication failed for user '%s'", user))
}

// readOnlyPoolDB is the pooler's name for db through the read-only pooled host.
func readOnlyPoolDB(db string) string { return db + "_readonly" }

// relay opens the backend session (PostgreSQL or the pooler), sends the startup
// packet, answers a clear-text password request with password, and copies the two
// streams until either side ends.
func (fd *frontDoor) relay(ss *session, conn net.Conn, br *bufio.Reader, network, addr string, params map[string]string, password string) {
	// A restart or failover starting now waits until this session can be ended
	// (its sessionLimits set), and none begins once the compute is down.
	fd.s.relayGate.RLock()
	fd.s.mu.Lock()
	refusal := fd.s.downRefusal
	fd.s.mu.Unlock()
	if refusal != "" {
		fd.s.relayGate.RUnlock()
		fd.s.count(EPNotReady)
		writeError(conn, "57P03", refusal)
		return
	}
	backend, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		fd.s.relayGate.RUnlock()
		writeError(conn, "57P03", "the database is not available")
		return
	}
	// A backend that does not finish the login (PostgreSQL or the pooler stopping
	// under it) is answered 57P03, as a proxy answers for a compute that is not up.
	backend.SetReadDeadline(time.Now().Add(backendLoginWait))
	bbr := bufio.NewReaderSize(backend, 64<<10)
	lim := &sessionLimits{s: fd.s, client: conn, backend: backend, backendR: bbr, started: time.Now(),
		idle: fd.s.opts.IdleSessionTimeout, life: fd.s.opts.MaxSessionLifetime}
	fd.mu.Lock()
	ss.backend = backend
	ss.lim = lim
	closed := fd.closed
	fd.mu.Unlock()
	fd.s.relayGate.RUnlock()
	if closed {
		return
	}
	var sb bytes.Buffer
	sb.Write([]byte{0, 0, 0, 0, 0, 3, 0, 0})
	for k, v := range params {
		sb.WriteString(k)
		sb.WriteByte(0)
		sb.WriteString(v)
		sb.WriteByte(0)
	}
	sb.WriteByte(0)
	startup := sb.Bytes()
	binary.BigEndian.PutUint32(startup, uint32(len(startup)))
	if _, err := backend.Write(startup); err != nil {
		return
	}
	if fd.pooled {
		// The pooler checking native passwords asks for one in clear text (the
		// client's, which the front door has read); trusting, it goes on at once.
		backend.SetReadDeadline(time.Now().Add(30 * time.Second))
		if hdr, err := bbr.Peek(9); err == nil && hdr[0] == 'R' && binary.BigEndian.Uint32(hdr[5:9]) == 3 {
			bbr.Discard(9)
			msg := make([]byte, 5, 6+len(password))
			msg[0] = 'p'
			msg = append(append(msg, password...), 0)
			binary.BigEndian.PutUint32(msg[1:], uint32(len(msg)-1))
			if _, err := backend.Write(msg); err != nil {
				return
			}
		}
		backend.SetReadDeadline(time.Now().Add(backendLoginWait))
	}
	fd.s.count(EPLogin)
	conn.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { io.Copy(backend, lim.clientReads(br)); backend.Close(); done <- struct{}{} }()
	go func() { lim.relayBackend(); conn.Close(); done <- struct{}{} }()
	<-done
	<-done
	lim.stop()
}

// sessionLimits ends a session as Lakebase does: idle (between transactions) for
// IdleSessionTimeout, or past MaxSessionLifetime at its next idle moment — FATAL
// 57P01, then the socket closes, as PostgreSQL does for an administrator's
// shutdown. It watches the backend's ReadyForQuery messages for the idle moments.
type sessionLimits struct {
	s               *Server
	client, backend net.Conn
	backendR        io.Reader // backend's stream, buffered
	started         time.Time
	idle, life      time.Duration

	wmu   sync.Mutex // serializes writes to the client; guards ended
	ended bool
	tmu   sync.Mutex // guards timer (never held across a write: the client's stream must keep flowing)
	timer *time.Timer
}

// backendLoginWait bounds the wait for the backend to finish a login.
const backendLoginWait = 10 * time.Second

// relayBackend copies the backend's messages to the client, noting idle moments.
// A backend that ends (or stalls) before its first ReadyForQuery without an error
// of its own is answered 57P03 to the client.
func (l *sessionLimits) relayBackend() {
	r := l.backendR
	var hdr [5]byte
	ready, sawError := false, false
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if !ready && !sawError {
				l.wmu.Lock()
				if !l.ended {
					l.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
					writeError(l.client, "57P03", "the database system is not accepting connections")
				}
				l.wmu.Unlock()
			}
			return
		}
		switch hdr[0] {
		case 'E':
			sawError = true
		case 'Z':
			if !ready {
				ready = true
				l.backend.SetReadDeadline(time.Time{})
			}
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 {
			return
		}
		msg := make([]byte, 5+n)
		copy(msg, hdr[:])
		if _, err := io.ReadFull(r, msg[5:]); err != nil {
			return
		}
		l.wmu.Lock()
		if l.ended {
			l.wmu.Unlock()
			return
		}
		_, err := l.client.Write(msg)
		l.wmu.Unlock()
		if err != nil {
			return
		}
		if hdr[0] == 'Z' && n == 1 && msg[5] == 'I' {
			l.idleNow()
		}
	}
}

// idleNow is told that the session is idle between transactions.
func (l *sessionLimits) idleNow() {
	if l.life > 0 && time.Since(l.started) >= l.life {
		l.end("lifetime")
		return
	}
	if l.idle > 0 {
		l.tmu.Lock()
		if l.timer != nil {
			l.timer.Stop()
		}
		l.timer = time.AfterFunc(l.idle, func() { l.end("idle") })
		l.tmu.Unlock()
	}
}

// clientReads wraps the client's stream: anything the client sends ends the idle wait.
func (l *sessionLimits) clientReads(r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if n > 0 {
			l.tmu.Lock()
			if l.timer != nil {
				l.timer.Stop()
				l.timer = nil
			}
			l.tmu.Unlock()
		}
		return n, err
	})
}

// end closes the session with FATAL 57P01; false when it had ended already.
func (l *sessionLimits) end(why string) bool {
	l.wmu.Lock()
	if l.ended {
		l.wmu.Unlock()
		return false
	}
	l.ended = true
	l.client.SetWriteDeadline(time.Now().Add(5 * time.Second)) // a client that reads nothing cannot hold this
	writeError(l.client, "57P01", "terminating connection due to administrator command")
	l.wmu.Unlock()
	l.s.count(EPSessionEnded)
	l.s.count(EPSessionEnded + ":" + why)
	l.client.Close()
	l.backend.Close()
	return true
}

func (l *sessionLimits) stop() {
	l.tmu.Lock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.tmu.Unlock()
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func hostOf(a net.Addr) string {
	h, _, _ := net.SplitHostPort(a.String())
	return h
}

func readPassword(r *bufio.Reader) (string, error) {
	t, err := r.ReadByte()
	if err != nil {
		return "", err
	}
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return "", err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if t != 'p' || n < 5 || n > 64*1024 {
		return "", errors.New("expected a password message")
	}
	b := make([]byte, n-4)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b, "\x00")), nil
}

// relayCancel forwards a cancel request to PostgreSQL, which matches it to the
// session by the backend key it handed out through the relay.
func (fd *frontDoor) relayCancel(code uint32, body []byte) {
	for _, pg := range fd.s.clusters() { // the one that handed out the key acts on it
		fd.relayCancelTo(pg, code, body)
		if sb := pg.RunningStandby(); sb != nil {
			fd.relayCancelTo(sb, code, body)
		}
	}
}

func (fd *frontDoor) relayCancelTo(pg *pgcluster.Cluster, code uint32, body []byte) {
	network, addr := pg.RelayAddr()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	pkt := make([]byte, 8+len(body))
	binary.BigEndian.PutUint32(pkt, uint32(len(pkt)))
	binary.BigEndian.PutUint32(pkt[4:], code)
	copy(pkt[8:], body)
	c.Write(pkt)
	// Wait for the server to close the cancel connection, as libpq does.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
}

// checkLogin returns "" when password may log in as user, else the reason.
func (s *Server) checkLogin(user, password string) string {
	s.mu.Lock()
	native, hasNative := s.passwords[user]
	pgPassword := s.pgPasswords[user]
	s.mu.Unlock()
	if hasNative {
		if native == password {
			return ""
		}
		return "wrong native password"
	}
	if pgPassword && s.pg != nil {
		// A password role of the roles API: PostgreSQL holds its password.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if s.pg.CheckPassword(ctx, user, password) {
			return ""
		}
		return "wrong native password"
	}
	c, err := s.parseJWT(password)
	if err != nil {
		return "not a valid credential: " + err.Error()
	}
	if c.Kind != "db" {
		return "not a database credential (a workspace token is not a password)"
	}
	if c.Subject != user {
		return "the credential was issued to another identity"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked[c.ID] {
		return "the credential was revoked"
	}
	if !s.revokeCreds.IsZero() && c.IssuedNano <= s.revokeCreds.UnixNano() {
		return "the credential was revoked"
	}
	return ""
}
