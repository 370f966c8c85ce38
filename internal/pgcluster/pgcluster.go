// Package pgcluster starts an ephemeral PostgreSQL cluster for tests and the local
// emulator: a temporary directory, loopback only, a free port, TLS with a freshly
// made CA, and, when the process runs as root, the server run as an unprivileged
// user. It can instead use an existing server named by LAKEBASE_TEST_POSTGRES.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/tempdir"

	"github.com/lakebase-go/lakebase/internal/testca"
)

// EnvServer names an existing PostgreSQL server to use instead of starting one: a
// postgres:// URL of a superuser. The emulator's front door logs in to it as each
// identity without a password, so it must trust loopback logins (pg_hba "trust").
// EnvServerCA optionally names the server's CA certificate file.
const (
	EnvServer   = "LAKEBASE_TEST_POSTGRES"
	EnvServerCA = "LAKEBASE_TEST_POSTGRES_CA"
)

// ErrNoBinaries is returned when no PostgreSQL server binaries can be found.
var ErrNoBinaries = errors.New("pgcluster: no PostgreSQL server binaries found (install them, e.g. `apt-get install -y postgresql` on Debian, or set " + EnvServer + " to a server URL)")

// Cluster is a running PostgreSQL server.
type Cluster struct {
	Host   string // loopback TCP host
	Port   int
	CAFile string // PEM of the CA that signed the server certificate ("" if unknown)
	CAPEM  []byte
	// SocketDir is the Unix socket's directory ("" for an external server): private
	// to this user (0700), and the server takes only peer logins there, of this OS
	// user as the roles made by CreateRole (and postgres).
	SocketDir string

	admin    string // admin connection string
	dir      string // removed by Stop: all of the cluster, or (persistent) its socket and CA
	root     string // data, server key and log: dir, or the persistent directory StartIn was given
	caDir    string // holds only ca.crt, readable by everyone
	bin      string // the server binaries
	cred     *credential
	runMu    sync.Mutex // serializes Restart and Stop
	osUsers  []string   // the OS users whose peer logins are mapped to roles: this process's and the server's
	identMu  sync.Mutex
	mapped   map[string]bool
	cmd      *exec.Cmd
	waitErr  chan error
	stopOnce sync.Once

	// The hot standby (Standby), started on first need. standbyMu serializes its
	// start with Stop; standby is read without it (allowPeer runs under identMu,
	// which a start takes after standbyMu).
	standbyMu sync.Mutex
	stopped   bool
	standby   atomic.Pointer[Cluster]
	primary   *Cluster // of a standby: the cluster it replays
}

// Start starts a new cluster, or attaches to the server named by EnvServer.
func Start(ctx context.Context) (*Cluster, error) {
	if u := os.Getenv(EnvServer); u != "" {
		return external(u)
	}
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Host: "127.0.0.1", waitErr: make(chan error, 1)}
	if err := c.start(ctx, bin, ""); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// StartIn starts a cluster whose data lives in root and survives Stop: the data
// directory (root/data), the server's key and certificate and its log. A root that
// holds a cluster already is started as it is (its roles can log in again); an
// absent or empty one is made. The socket is in a fresh private temporary
// directory (a socket's path is short), removed by Stop. When the server runs as
// another user (this process is root), root's parent is given search permission
// for that user (o+x, not read). EnvServer is not used.
func StartIn(ctx context.Context, root string) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Host: "127.0.0.1", waitErr: make(chan error, 1)}
	if err := c.start(ctx, bin, root); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// DataVersion returns the PostgreSQL major version of the data StartIn made in
// root (its PG_VERSION: 15, 16, ...; 9.6 reads as 9).
func DataVersion(root string) (int, error) {
	b, err := os.ReadFile(filepath.Join(root, "data", "PG_VERSION"))
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(string(b))
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("pgcluster: PG_VERSION %q is not a version", firstWord(v))
	}
	return n, nil
}

// ServerVersion returns the major version of the PostgreSQL that Start and
// StartIn run (FindBinDir's), and where it is.
func ServerVersion() (int, string, error) {
	bin, err := FindBinDir()
	if err != nil {
		return 0, "", err
	}
	out, err := exec.Command(filepath.Join(bin, "postgres"), "-V").Output()
	if err != nil {
		return 0, bin, fmt.Errorf("pgcluster: %s -V: %w", filepath.Join(bin, "postgres"), err)
	}
	// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0, bin, fmt.Errorf("pgcluster: postgres -V said %q", firstWord(string(out)))
	}
	major, _, _ := strings.Cut(f[2], ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, bin, fmt.Errorf("pgcluster: postgres -V said %q", string(out))
	}
	return n, bin, nil
}

func firstWord(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// Initialized reports whether root holds a cluster made by StartIn.
func Initialized(root string) bool {
	_, err := os.Stat(filepath.Join(root, "data", "PG_VERSION"))
	return err == nil
}

func external(raw string) (*Cluster, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %s is not a URL", EnvServer)
	}
	port := 5432
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	}
	c := &Cluster{Host: u.Hostname(), Port: port, admin: raw}
	if f := os.Getenv(EnvServerCA); f != "" {
		if c.CAPEM, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("pgcluster: %s: %w", EnvServerCA, err)
		}
		c.CAFile = f
	}
	return c, nil
}

// FindBinDir finds a directory holding initdb and postgres: on PATH, through
// pg_config --bindir, or under the usual install directories (newest version first).
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	var cands []string
	for _, pat := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin", "/usr/local/opt/postgresql*/bin"} {
		m, _ := filepath.Glob(pat)
		cands = append(cands, m...)
	}
	sort.Slice(cands, func(i, j int) bool { return versionOf(cands[i]) > versionOf(cands[j]) })
	for _, d := range cands {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(path string) int {
	for _, part := range strings.Split(path, "/") {
		part = strings.TrimPrefix(strings.TrimPrefix(part, "pgsql-"), "postgresql@")
		if n, err := strconv.Atoi(part); err == nil {
			return n
		}
	}
	return 0
}

func (c *Cluster) start(ctx context.Context, bin, root string) error {
	// Directories of clusters whose process was killed (SIGKILL leaves them) go first.
	tempdir.Sweep("lakebase-pg-")
	dir, err := tempdir.Make("lakebase-pg-")
	if err != nil {
		return err
	}
	c.dir = dir
	c.SocketDir = dir
	c.root = dir
	cred, err := runAs()
	if err != nil {
		return err
	}
	c.bin, c.cred = bin, cred
	reuse := false
	if root != "" {
		if cred != nil {
			if err := allowSearch(filepath.Dir(root)); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(root, 0o700); err != nil {
			return err
		}
		c.root = root
		reuse = Initialized(root)
	}

	ca, err := testca.New("lakebase test PostgreSQL CA")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue("localhost", "127.0.0.1", "::1")
	if err != nil {
		return err
	}
	c.CAPEM = ca.CertPEM
	// The CA certificate lives apart, readable by everyone; the cluster's directory
	// (server key, data, socket) stays private to the user running it (0700).
	if c.caDir, err = tempdir.Make("lakebase-pg-ca-"); err != nil {
		return err
	}
	c.CAFile = filepath.Join(c.caDir, "ca.crt")
	if err := os.WriteFile(c.CAFile, ca.CertPEM, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(c.caDir, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{"server.crt": certPEM, "server.key": keyPEM}
	for name, data := range files {
		if err := writeNew(filepath.Join(c.root, name), data); err != nil {
			return err
		}
	}
	for _, d := range []string{dir, c.root} {
		if err := chownTree(d, cred); err != nil {
			return err
		}
	}
	if err := tempdir.Mark(dir); err != nil { // the mark stays this user's
		return err
	}
	for _, d := range []string{dir, c.root} {
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	me, err := osUserName()
	if err != nil {
		return err
	}
	// The server's own OS user (a pooler runs as it) may log in as the roles too: it
	// owns the data already.
	c.osUsers = []string{me}
	if srv := credUserName(cred); srv != "" && srv != me {
		c.osUsers = append(c.osUsers, srv)
	}

	data := filepath.Join(c.root, "data")
	if reuse {
		return c.restart(ctx, data)
	}
	if err := initdb(ctx, bin, data, cred); err != nil {
		return err
	}
	// Over the socket, only peer logins of this OS user, mapped to postgres and to
	// the roles CreateRole makes (pg_ident.conf); over TCP, passwords.
	hba := "local all all " + localAuth + "\n" + "local replication postgres " + localAuth + "\n" +
		"hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n" +
		"host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	c.mapped = map[string]bool{"postgres": true}
	if err := os.WriteFile(filepath.Join(data, "pg_ident.conf"), []byte(c.identLines("postgres")), 0o600); err != nil {
		return err
	}
	if err := chownTree(data, cred); err != nil {
		return err
	}

	return c.launchOnFreePort(ctx, data)
}

// initdbTimeout bounds one initdb: it takes a second or two even on a loaded
// machine, and one that has not finished in this long is stuck (an initdb was once
// seen waiting for minutes with nothing to show), so it is killed and run again.
const initdbTimeout = 2 * time.Minute

// initdb makes the data directory data, as cred, trying up to three times when an
// initdb is stuck; a failure that is initdb's own is returned at once.
func initdb(ctx context.Context, bin, data string, cred *credential) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, initdbTimeout)
		cmd := exec.CommandContext(actx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
			"--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
		cmd.SysProcAttr = runAsAttr(cred)
		cmd.WaitDelay = 5 * time.Second // a child left holding the output ends the wait too
		out, runErr := cmd.CombinedOutput()
		stuck := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if runErr == nil {
			return nil
		}
		err = fmt.Errorf("pgcluster: initdb: %v\n%s", runErr, out)
		if !stuck {
			return err
		}
		if rerr := os.RemoveAll(data); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return fmt.Errorf("%w (did not finish in %v, three times)", err, initdbTimeout)
}

func (c *Cluster) launchOnFreePort(ctx context.Context, data string) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.Port = port
		if lastErr = c.launch(ctx, c.bin, data, c.cred); lastErr == nil {
			return nil
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			return lastErr
		}
	}
	return lastErr
}

// restart starts a cluster that StartIn made before: the peer map is written anew
// for this process's OS users (postgres first, then every login role the server
// has), as a new cluster's is.
func (c *Cluster) restart(ctx context.Context, data string) error {
	c.mapped = map[string]bool{"postgres": true}
	ident := filepath.Join(data, "pg_ident.conf")
	if err := writeNew(ident, []byte(c.identLines("postgres"))); err != nil {
		return err
	}
	if err := chownTree(ident, c.cred); err != nil {
		return err
	}
	if err := c.launchOnFreePort(ctx, data); err != nil {
		return err
	}
	pc, err := pgconn.Connect(ctx, c.AdminConnString("postgres"))
	if err != nil {
		return err
	}
	res, err := pc.Exec(ctx, "SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname <> 'postgres'").ReadAll()
	pc.Close(context.Background())
	if err != nil {
		return err
	}
	var roles []string
	for _, r := range res {
		for _, row := range r.Rows {
			roles = append(roles, string(row[0]))
		}
	}
	return c.allowPeer(ctx, roles...)
}

// Restart stops the server (a fast shutdown: its sessions end with FATAL 57P01),
// waits downtime, and starts it again on the same port with the same data, as a
// compute restart does. A ctx done before the downtime is over leaves the server
// stopped (Stop still cleans up).
func (c *Cluster) Restart(ctx context.Context, downtime time.Duration) error {
	if c.dir == "" {
		return errors.New("pgcluster: an external server cannot be restarted")
	}
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.cmd == nil {
		return errors.New("pgcluster: the server is stopped")
	}
	stopProcess(c.cmd, c.waitErr, interrupt, 15*time.Second)
	c.cmd = nil
	if downtime > 0 {
		t := time.NewTimer(downtime)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgcluster: the server was stopped and not started again: %w", err)
	}
	if err := c.launch(ctx, c.bin, filepath.Join(c.root, "data"), c.cred); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) launch(ctx context.Context, bin, data string, cred *credential, extra ...string) error {
	logPath := filepath.Join(c.root, "postgres.log")
	logf, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	// synchronous_commit stays on (fsync=off keeps it cheap): a commit has reached
	// the WAL a standby streams when it returns, so pg_current_wal_lsn() is past it,
	// as on a real server.
	args := []string{"-D", data, "-p", strconv.Itoa(c.Port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "ssl=on",
		"-c", "ssl_cert_file=" + filepath.Join(c.root, "server.crt"),
		"-c", "ssl_key_file=" + filepath.Join(c.root, "server.key"),
		"-c", "max_connections=300", "-c", "shared_buffers=32MB",
		"-c", "password_encryption=scram-sha-256",
	}
	if c.root == c.dir {
		// Throwaway data: speed over durability (synchronous_commit stays on, see
		// above). Data kept across restarts (StartIn) keeps PostgreSQL's defaults,
		// so a commit survives a killed emulator.
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	args = append(args, extra...) // a later -c wins
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgcluster: starting postgres: %w", err)
	}
	c.cmd = cmd
	c.waitErr = make(chan error, 1)
	go func() { c.waitErr <- cmd.Wait() }()
	c.admin = fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", c.dir, c.Port)

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-c.waitErr:
			c.waitErr <- err
			c.cmd = nil
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgcluster: postgres exited (%v):\n%s", err, tail(log))
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		pc, err := pgconn.Connect(pctx, c.admin)
		cancel()
		if err == nil {
			pc.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgcluster: postgres did not become ready: %v\n%s", err, tail(log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// AdminConnString returns a pgx/libpq connection string for a superuser session on db.
func (c *Cluster) AdminConnString(db string) string {
	if c.SocketDir == "" {
		u, _ := url.Parse(c.admin)
		if db != "" {
			u.Path = "/" + db
		}
		return u.String()
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", c.SocketDir, c.Port, quoteKV(db))
}

// TrustedConnString returns a connection string that logs in as user on db with no
// password (the Unix socket is trusted). It is what the emulator's front door relays to.
func (c *Cluster) TrustedConnString(user, db string) string {
	if c.SocketDir == "" {
		u, _ := url.Parse(c.admin)
		u.User = url.User(user)
		u.Path = "/" + db
		return u.String()
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.SocketDir, c.Port, quoteKV(user), quoteKV(db))
}

// RelayAddr returns where a raw Postgres session for a trusted login can be opened:
// the Unix socket, or the external server's TCP address.
func (c *Cluster) RelayAddr() (network, address string) {
	if c.SocketDir != "" {
		return "unix", filepath.Join(c.SocketDir, ".s.PGSQL."+strconv.Itoa(c.Port))
	}
	return "tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

func quoteKV(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `\'`) + "'"
}

// Exec runs sql as the superuser on db ("" = postgres).
func (c *Cluster) Exec(ctx context.Context, db, sql string) error {
	if db == "" {
		db = "postgres"
	}
	pc, err := pgconn.Connect(ctx, c.AdminConnString(db))
	if err != nil {
		return err
	}
	defer pc.Close(context.Background())
	_, err = pc.Exec(ctx, sql).ReadAll()
	return err
}

// CountSessions counts the client backends of role on db (pg_stat_activity).
func (c *Cluster) CountSessions(ctx context.Context, role, db string) (int, error) {
	pc, err := pgconn.Connect(ctx, c.AdminConnString("postgres"))
	if err != nil {
		return 0, err
	}
	defer pc.Close(context.Background())
	res := pc.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = $1 AND datname = $2",
		[][]byte{[]byte(role), []byte(db)}, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, res.Err
	}
	return strconv.Atoi(string(res.Rows[0][0]))
}

// CopyRolesFrom makes the roles of src (with their memberships and attributes, as
// pg_dumpall --roles-only has them) in c, and lets the login roles log in over c's
// socket: a branch has its parent's roles.
func (c *Cluster) CopyRolesFrom(ctx context.Context, src *Cluster) error {
	dump := exec.CommandContext(ctx, Tool("pg_dumpall"), "--roles-only", "--no-role-passwords", "-d", src.AdminConnString("postgres"))
	load := exec.CommandContext(ctx, Tool("psql"), "-X", "-q", "-d", c.AdminConnString("postgres"))
	if err := Pipe(dump, load); err != nil { // "role postgres already exists" is expected and ignored by psql
		return fmt.Errorf("pgcluster: copying roles: %w", err)
	}
	pc, err := pgconn.Connect(ctx, c.AdminConnString("postgres"))
	if err != nil {
		return err
	}
	res, err := pc.Exec(ctx, "SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname <> 'postgres'").ReadAll()
	pc.Close(context.Background())
	if err != nil {
		return err
	}
	var roles []string
	for _, r := range res {
		for _, row := range r.Rows {
			roles = append(roles, string(row[0]))
		}
	}
	return c.allowPeer(ctx, roles...)
}

// Pipe runs from | to (pg_dump | pg_restore, say) and reports the failure of
// either with its output.
func Pipe(from, to *exec.Cmd) error {
	pipe, err := from.StdoutPipe()
	if err != nil {
		return err
	}
	to.Stdin = pipe
	var fromErr, toOut strings.Builder
	from.Stderr = &fromErr
	if to.Stdout == nil {
		to.Stdout = &toOut
	}
	to.Stderr = &toOut
	if err := from.Start(); err != nil {
		return err
	}
	if err := to.Run(); err != nil {
		from.Wait()
		return fmt.Errorf("%s: %v: %s", filepath.Base(to.Path), err, toOut.String())
	}
	if err := from.Wait(); err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(from.Path), err, fromErr.String())
	}
	return nil
}

// Tool returns the path of a PostgreSQL program (pg_dump, psql, ...): beside the
// server binaries when it is there, else on PATH.
func Tool(name string) string {
	if bin, err := FindBinDir(); err == nil {
		dirs := []string{bin}
		if real, err := filepath.EvalSymlinks(filepath.Join(bin, "initdb")); err == nil {
			dirs = append(dirs, filepath.Dir(real)) // a link to the server's own directory
		}
		for _, d := range dirs {
			if fi, err := os.Stat(filepath.Join(d, name)); err == nil && !fi.IsDir() {
				return filepath.Join(d, name)
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// Own reports whether c is a cluster this package started (not an external server).
func (c *Cluster) Own() bool { return c.dir != "" }

// QuoteIdent quotes a Postgres identifier.
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// QuoteLiteral quotes a Postgres string literal.
func QuoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// CreateDatabase creates db if it does not exist.
func (c *Cluster) CreateDatabase(ctx context.Context, db string) error {
	err := c.Exec(ctx, "", "CREATE DATABASE "+QuoteIdent(db))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P04" {
		return nil
	}
	return err
}

// CreateRole creates a login role (with a password when password is not empty) that
// may create objects in the public schema of db, or updates the password of an
// existing role.
func (c *Cluster) CreateRole(ctx context.Context, role, password, db string) error {
	pw := ""
	if password != "" {
		pw = " PASSWORD " + QuoteLiteral(password)
	}
	q := fmt.Sprintf(`DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN
    CREATE ROLE %s LOGIN%s;
  ELSE
    ALTER ROLE %s LOGIN%s;
  END IF;
END $$`, QuoteLiteral(role), QuoteIdent(role), pw, QuoteIdent(role), pw)
	if err := c.Exec(ctx, "", q); err != nil {
		return err
	}
	if err := c.allowPeer(ctx, role); err != nil {
		return err
	}
	if db == "" {
		return nil
	}
	return c.Exec(ctx, db, fmt.Sprintf("GRANT ALL ON DATABASE %s TO %s; GRANT ALL ON SCHEMA public TO %s",
		QuoteIdent(db), QuoteIdent(role), QuoteIdent(role)))
}

// AllowLogin lets the peer logins of this OS user log in over the socket as each
// of roles (roles that exist and have LOGIN; CreateRole does this itself).
func (c *Cluster) AllowLogin(ctx context.Context, roles ...string) error {
	return c.allowPeer(ctx, roles...)
}

// identLines map the peer logins of c's OS users to role (pg_ident.conf, map "lakebase").
func (c *Cluster) identLines(role string) string {
	var b strings.Builder
	for _, u := range c.osUsers {
		b.WriteString("lakebase " + identToken(u) + " " + identToken(role) + "\n")
	}
	return b.String()
}

func identToken(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// allowPeer lets this OS user log in over the socket as each of roles, and waits
// until the server has read the new map (a login as one of them succeeds).
func (c *Cluster) allowPeer(ctx context.Context, roles ...string) error {
	if c.dir == "" || localAuth != "peer map=lakebase" {
		return nil // an external server, or no peer logins on this OS
	}
	for _, r := range roles {
		if strings.ContainsAny(r, "\r\n\x00") {
			return fmt.Errorf("pgcluster: role name %q cannot be written to pg_ident.conf (it holds a line break or NUL)", r)
		}
	}
	c.identMu.Lock()
	defer c.identMu.Unlock()
	var lines strings.Builder
	role := ""
	for _, r := range roles {
		if !c.mapped[r] {
			lines.WriteString(c.identLines(r))
			role = r
		}
	}
	if role == "" {
		return nil
	}
	if err := appendFile(filepath.Join(c.root, "data", "pg_ident.conf"), lines.String()); err != nil {
		return err
	}
	if err := c.Exec(ctx, "", "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	if err := c.awaitPeerLogin(ctx, role); err != nil {
		return err
	}
	if sb := c.standby.Load(); sb != nil {
		// The standby has its own copy of the map; the role reaches it by replay.
		if err := appendFile(filepath.Join(sb.dir, "data", "pg_ident.conf"), lines.String()); err != nil {
			return err
		}
		if err := sb.Exec(ctx, "", "SELECT pg_reload_conf()"); err != nil {
			return err
		}
		if err := sb.awaitPeerLogin(ctx, role); err != nil {
			return err
		}
	}
	for _, r := range roles {
		c.mapped[r] = true
	}
	return nil
}

// writeNew writes path as a new 0600 file: whatever was there (whoever owned it)
// is removed, and one that appears meanwhile, a link planted by the server's user
// (the directory is that user's when this process is root), fails the write
// rather than being written through.
func writeNew(path string, data []byte) error {
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// openLog opens the server's log for appending, never through a symbolic link;
// a log with other names (a hard link to some other file) is replaced by a new one.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|noFollow, 0o644)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && hardLinked(fi) {
		f.Close()
		os.Remove(path)
		return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND|noFollow, 0o644)
	}
	return f, nil
}

// appendFile appends to path, never through a symbolic link or to a file with
// other names.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|noFollow, 0)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err == nil && hardLinked(fi) {
		f.Close()
		return fmt.Errorf("pgcluster: %s has other names (a hard link): not written", path)
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// awaitPeerLogin waits until a peer login as role works (the server has read a
// new map, and, on a standby, replayed the role).
func (c *Cluster) awaitPeerLogin(ctx context.Context, role string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pc, err := pgconn.Connect(ctx, c.TrustedConnString(role, "postgres"))
		if err == nil {
			pc.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("pgcluster: the peer login of role %s did not start working: %w", role, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CheckPassword reports whether PostgreSQL takes password for role (a SCRAM login
// over loopback TCP).
//
// The password goes only to this cluster's own server: over TLS verified against
// its CA, never in clear to whoever holds the port while the server is down (a
// restart's downtime leaves it free to any local user).
func (c *Cluster) CheckPassword(ctx context.Context, role, password string) bool {
	tls := "sslmode=disable"
	if c.dir != "" {
		tls = "sslmode=verify-full sslrootcert=" + quoteKV(c.CAFile)
	}
	cs := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres %s", c.Host, c.Port, quoteKV(role), quoteKV(password), tls)
	pc, err := pgconn.Connect(ctx, cs)
	if err != nil {
		return false
	}
	pc.Close(ctx)
	return true
}

// HasLoginRole reports whether role may log in over the socket (a role CreateRole
// made, or a branch copied). An external server: always true (it cannot tell).
func (c *Cluster) HasLoginRole(role string) bool {
	if c.dir == "" || localAuth != "peer map=lakebase" {
		return true
	}
	c.identMu.Lock()
	defer c.identMu.Unlock()
	return c.mapped[role]
}

// ForgetRole records that role was dropped (its peer line stays, matching nothing).
func (c *Cluster) ForgetRole(role string) {
	c.identMu.Lock()
	delete(c.mapped, role)
	c.identMu.Unlock()
}

// Stop shuts the server down (fast shutdown, then kill) and removes its directory.
func (c *Cluster) Stop() error {
	var err error
	c.stopOnce.Do(func() {
		c.standbyMu.Lock()
		c.stopped = true // no standby starts from now on
		c.standbyMu.Unlock()
		if sb := c.standby.Swap(nil); sb != nil {
			sb.Stop() // before its primary, whose directory holds it
		}
		c.runMu.Lock()
		defer c.runMu.Unlock()
		stopProcess(c.cmd, c.waitErr, interrupt, 15*time.Second)
		c.cmd = nil
		if c.dir != "" {
			err = os.RemoveAll(c.dir)
		}
		if c.caDir != "" {
			os.RemoveAll(c.caDir)
		}
	})
	return err
}

// stopProcess asks the server cmd runs to stop (signal), waits for it (waitErr
// has its Wait's result) and kills it after grace.
func stopProcess(cmd *exec.Cmd, waitErr chan error, signal func(*os.Process) error, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = signal(cmd.Process)
	select {
	case <-waitErr:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-waitErr
	}
}

// Pid returns the postmaster's process id, or 0.
func (c *Cluster) Pid() int {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Dir returns the cluster's temporary directory ("" for an external server).
func (c *Cluster) Dir() string { return c.dir }
