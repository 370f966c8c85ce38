package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoStandby is returned by Standby for a server this package did not start.
var ErrNoStandby = errors.New("pgcluster: a hot standby needs a cluster this package started (not " + EnvServer + ")")

// standbySlot is the primary's replication slot for its standby: the primary keeps
// the WAL the standby has not replayed.
const standbySlot = "lakebase_standby"

// StandbySocket returns where the standby's Unix socket is (directory and port),
// whether or not it runs yet: a pooler can be pointed at it before its first client
// starts it. ok is false for a server this package did not start.
func (c *Cluster) StandbySocket() (dir string, port int, ok bool) {
	if !c.Own() {
		return "", 0, false
	}
	return filepath.Join(c.dir, "standby"), c.Port, true
}

// RunningStandby returns the standby if it has been started, else nil.
func (c *Cluster) RunningStandby() *Cluster { return c.standby.Load() }

// Standby returns the cluster's hot standby, starting it on first use: a second
// PostgreSQL made with pg_basebackup -R from this one (as the same OS user), in
// hot_standby, streaming from it through a replication slot. It is read-only as a
// replica is: whatever a session sets, a write fails (25006), and SET TRANSACTION
// READ WRITE is refused (0A000). It listens only on its Unix socket (StandbySocket),
// in a directory inside the primary's, takes the same peer logins, and is stopped
// with it (Stop, or the parent-death signal); its files go with the primary's
// directory. Its data lags the primary's by replication: CatchUp waits for it.
func (c *Cluster) Standby(ctx context.Context) (*Cluster, error) {
	if sb := c.standby.Load(); sb != nil {
		return sb, nil
	}
	if !c.Own() || c.primary != nil {
		return nil, ErrNoStandby
	}
	c.standbyMu.Lock()
	defer c.standbyMu.Unlock()
	if sb := c.standby.Load(); sb != nil {
		return sb, nil
	}
	if c.stopped {
		return nil, errors.New("pgcluster: the cluster is stopped")
	}
	dir, port, _ := c.StandbySocket()
	sb := &Cluster{Host: "", Port: port, SocketDir: dir, dir: dir, root: dir, osUsers: c.osUsers, primary: c, waitErr: make(chan error, 1)}
	if err := c.startStandby(ctx, sb); err != nil {
		stopProcess(sb.cmd, sb.waitErr, interrupt, 15*time.Second)
		os.RemoveAll(dir)
		c.Exec(context.Background(), "", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = "+QuoteLiteral(standbySlot))
		return nil, err
	}
	return sb, nil
}

func (c *Cluster) startStandby(ctx context.Context, sb *Cluster) error {
	bin, err := FindBinDir()
	if err != nil {
		return err
	}
	cred, err := runAs()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(sb.dir); err != nil { // what a failed start left
		return err
	}
	if err := os.Mkdir(sb.dir, 0o700); err != nil {
		return err
	}
	if err := chownTree(sb.dir, cred); err != nil {
		return err
	}
	// The peer map is copied by the backup and must not change until the standby is
	// published: allowPeer appends to the standby's copy from then on.
	c.identMu.Lock()
	defer c.identMu.Unlock()
	if err := c.Exec(ctx, "", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = "+QuoteLiteral(standbySlot)); err != nil {
		return err
	}
	data := filepath.Join(sb.dir, "data")
	backup := exec.CommandContext(ctx, Tool("pg_basebackup"), "-D", data, "-d", c.AdminConnString("postgres"),
		"-R", "-X", "stream", "-C", "-S", standbySlot, "--checkpoint=fast", "--no-sync")
	backup.SysProcAttr = runAsAttr(cred)
	backup.Dir = sb.dir
	if out, err := backup.CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: pg_basebackup: %v\n%s", err, out)
	}
	if err := sb.launch(ctx, bin, data, cred,
		"-c", "listen_addresses=", "-c", "ssl=off", "-c", "hot_standby=on",
		"-c", "hot_standby_feedback=on"); err != nil {
		return err
	}
	c.standby.Store(sb)
	return nil
}

// CatchUp waits until the standby (if one runs) has replayed all the primary has
// written until now.
func (c *Cluster) CatchUp(ctx context.Context) error {
	sb := c.standby.Load()
	if sb == nil {
		return nil
	}
	pc, err := pgconn.Connect(ctx, c.AdminConnString("postgres"))
	if err != nil {
		return err
	}
	res := pc.ExecParams(ctx, "SELECT pg_current_wal_lsn()::text", nil, nil, nil, nil).Read()
	pc.Close(context.Background())
	if res.Err != nil {
		return res.Err
	}
	lsn := res.Rows[0][0]
	spc, err := pgconn.Connect(ctx, sb.AdminConnString("postgres"))
	if err != nil {
		return err
	}
	defer spc.Close(context.Background())
	for {
		res := spc.ExecParams(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", [][]byte{lsn}, nil, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		if len(res.Rows) == 1 && string(res.Rows[0][0]) == "t" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: the standby did not replay %s: %w", lsn, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
