package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lakebase-go/lakebase/internal/tempdir"
)

// ErrNoPgBouncer is returned when no pgbouncer program can be found.
var ErrNoPgBouncer = errors.New("pgcluster: no pgbouncer found (install it: `apt-get install -y pgbouncer` on Debian, `brew install pgbouncer` on macOS)")

// FindPgBouncer finds the pgbouncer program: on PATH, else where Debian and
// Homebrew install it.
func FindPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer", "/opt/homebrew/bin/pgbouncer"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", ErrNoPgBouncer
}

// BouncerDatabase is one database a Bouncer serves: Name (what clients ask for) is
// DBName on Cluster, or with Standby on Cluster's hot standby (StandbySocket; the
// caller starts it with Cluster.Standby before a client can ask for Name).
type BouncerDatabase struct {
	Name    string
	Cluster *Cluster
	DBName  string
	Standby bool
}

// BouncerOptions configure a Bouncer.
type BouncerOptions struct {
	// PoolSize is the number of server sessions per user and database
	// (default_pool_size).
	PoolSize int
	// Password makes clients log in with their role's Postgres password, checked by
	// the pooler (auth_type plain against the role's SCRAM secret, read with
	// auth_query); otherwise any existing role logs in without one (trust).
	Password  bool
	Databases []BouncerDatabase
}

// Bouncer is a running PgBouncer in transaction mode, listening only on a Unix
// socket in a directory private to the user running it.
type Bouncer struct {
	dir  string
	port int
	bin  string
	opts BouncerOptions

	runMu   sync.Mutex // held by Restart and Stop
	mu      sync.Mutex // guards cmd
	cmd     *exec.Cmd
	waitErr chan error
}

// StartBouncer starts PgBouncer in front of the databases of opts, run as the same
// unprivileged user as PostgreSQL when this process is root (it refuses root too).
func StartBouncer(ctx context.Context, opts BouncerOptions) (*Bouncer, error) {
	bin, err := FindPgBouncer()
	if err != nil {
		return nil, err
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 10
	}
	tempdir.Sweep("lakebase-pgbouncer-")
	dir, err := tempdir.Make("lakebase-pgbouncer-")
	if err != nil {
		return nil, err
	}
	b := &Bouncer{dir: dir, port: 6432, bin: bin, opts: opts}
	if err := b.start(ctx); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

func (b *Bouncer) start(ctx context.Context) error {
	bin, opts := b.bin, b.opts
	cred, err := runAs()
	if err != nil {
		return err
	}
	var dbs strings.Builder
	for _, d := range opts.Databases {
		if d.Cluster == nil || d.Cluster.SocketDir == "" {
			return errors.New("pgcluster: the pooler needs a cluster this package started (not " + EnvServer + ")")
		}
		host, port := d.Cluster.SocketDir, d.Cluster.Port
		if d.Standby {
			host, port, _ = d.Cluster.StandbySocket()
		}
		fmt.Fprintf(&dbs, "%s = host=%s port=%d dbname=%s auth_user=postgres\n", iniName(d.Name), host, port, connValue(d.DBName))
	}
	auth := "trust"
	if opts.Password {
		auth = "plain" // the front door has the clear-text password; checked against the SCRAM secret
	}
	ini := fmt.Sprintf(`[databases]
%s
[pgbouncer]
listen_addr =
listen_port = %d
unix_socket_dir = %s
unix_socket_mode = 0700
auth_type = %s
auth_file = %s
auth_user = postgres
pool_mode = transaction
default_pool_size = %d
max_client_conn = 10000
query_wait_timeout = 120
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s
`, dbs.String(), b.port, b.dir, auth, filepath.Join(b.dir, "users.txt"), opts.PoolSize,
		filepath.Join(b.dir, "pgbouncer.log"), filepath.Join(b.dir, "pgbouncer.pid"))
	files := map[string]string{
		"pgbouncer.ini": ini,
		// The auth_query runs as postgres, which logs in over the socket by peer.
		"users.txt": `"postgres" ""` + "\n",
	}
	for name, data := range files {
		// Written anew: at a restart the directory is the server's user's.
		if err := writeNew(filepath.Join(b.dir, name), []byte(data)); err != nil {
			return err
		}
	}
	if err := chownTree(b.dir, cred); err != nil {
		return err
	}
	if err := tempdir.Mark(b.dir); err != nil {
		return err
	}
	if err := os.Chmod(b.dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(bin, filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgcluster: starting pgbouncer: %w", err)
	}
	waitErr := make(chan error, 1)
	b.mu.Lock()
	b.cmd, b.waitErr = cmd, waitErr
	b.mu.Unlock()
	go func() { waitErr <- cmd.Wait() }()
	network, addr := b.Addr()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-waitErr:
			waitErr <- err
			b.setCmd(nil)
			log, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
			return fmt.Errorf("pgcluster: pgbouncer exited (%v):\n%s", err, tail(log))
		default:
		}
		if c, err := net.DialTimeout(network, addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
			return fmt.Errorf("pgcluster: pgbouncer did not start listening:\n%s", tail(log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// iniName quotes a name for pgbouncer.ini when it needs quoting.
func iniName(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// connValue quotes a value of a [databases] connection string.
func connValue(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Addr returns the pooler's Unix socket.
func (b *Bouncer) Addr() (network, address string) {
	return "unix", filepath.Join(b.dir, ".s.PGSQL."+strconv.Itoa(b.port))
}

func (b *Bouncer) setCmd(cmd *exec.Cmd) {
	b.mu.Lock()
	b.cmd = cmd
	b.mu.Unlock()
}

// Pid returns the pooler's process id, or 0.
func (b *Bouncer) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Restart stops the pooler, runs while (the restart of the server behind it) and
// starts the pooler again, on the same socket with the same configuration: a new
// process that knows nothing of the server logins that failed while the server
// was away. The pooler is started again even when while fails.
func (b *Bouncer) Restart(ctx context.Context, while func() error) error {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	b.halt()
	err := while()
	if serr := b.start(ctx); serr != nil {
		b.halt()
		return errors.Join(err, serr)
	}
	return err
}

// halt stops the pooler's process.
func (b *Bouncer) halt() {
	b.mu.Lock()
	cmd, waitErr := b.cmd, b.waitErr
	b.mu.Unlock()
	stopProcess(cmd, waitErr, terminate, 10*time.Second)
	b.setCmd(nil)
}

// Dir returns the pooler's temporary directory.
func (b *Bouncer) Dir() string { return b.dir }

// Stop shuts the pooler down (its server sessions close) and removes its directory.
func (b *Bouncer) Stop() error {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	b.halt()
	return os.RemoveAll(b.dir)
}
