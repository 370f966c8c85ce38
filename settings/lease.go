package settings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// A store lock's lease: the process holding one of a store's lock files writes
// its process id and a deadline into a file beside it (<lock>.lease) and renews
// it while it holds the lock, so a waiter tells a holder at work from one that is
// stopped (SIGSTOP, ^Z, a debugger) or hung, and can name it. The lease is only
// advice, written by whoever holds the lock: a waiter believes no deadline further
// off than a lease lasts and never takes a lock it says is free. What a waiter
// does with a lapsed lease depends on the lock: Exclusive goes on without it (the
// lock only saves requests); Update fails (its lock is what keeps a single-use
// refresh token from being redeemed twice).
const (
	leaseTTL   = 4 * time.Second // how long a lease lasts unless renewed
	leaseRenew = leaseTTL / 4    // how often its holder renews it
	leaseLook  = 100 * time.Millisecond
	leaseSize  = 64 // a lease record's length; a reader reads at most twice that
)

// exclusiveMaxWait bounds an Exclusive wait even on a holder whose lease is
// renewed: past it the waiter does the work itself.
var exclusiveMaxWait = 10 * time.Second

// ErrLockHeld is matched by a *LockHeldError.
var ErrLockHeld = errors.New("lakebase: a store lock is held")

// LockHeldError reports a wait for one of a store's locks that ended without the
// lock: the caller's context ended, or (for the lock of Update, which is never
// skipped) the process holding it stopped renewing its lease. It names the lock
// and, as far as the lock's lease says, the process that holds it.
type LockHeldError struct {
	Lock  string    // the lock file, or the lock's name for a memory store
	PID   int       // the holder's process id, as its lease says; 0 when unknown
	Until time.Time // the holder's lease deadline; zero when unknown
	// Lapsed is set when the holder stopped renewing its lease: it is stopped
	// (SIGSTOP, a debugger) or hung.
	Lapsed bool
	Err    error // the context's error, when that ended the wait
}

// Error names the lock, its holder and what to do.
func (e *LockHeldError) Error() string {
	s := "lakebase: the lock " + e.Lock + " is held by "
	switch {
	case e.PID == os.Getpid():
		s += "another caller in this process"
	case e.PID != 0:
		s += "process " + strconv.Itoa(e.PID)
	default:
		s += "another process"
	}
	if e.Lapsed {
		s += ", which has stopped renewing its lease (the process is stopped, e.g. by SIGSTOP or a debugger, or hung): resume or end it"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the context's error, if any.
func (e *LockHeldError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrLockHeld) true.
func (e *LockHeldError) Is(t error) bool { return t == ErrLockHeld }

func leasePath(lockPath string) string { return lockPath + ".lease" }

// lease is what a lease file says.
type lease struct {
	pid   int
	until time.Time
}

func (l lease) record() []byte {
	out := append([]byte(nil), releasedRecord...)
	copy(out, fmt.Sprintf("lakebase-lease pid=%d until=%d", l.pid, l.until.UnixNano()))
	return out
}

// releasedRecord is what a lease file says once its holder let the lock go: no lease.
var releasedRecord = []byte(strings.Repeat(" ", leaseSize-1) + "\n")

// parseLease reads a lease record; anything else (a torn write, garbage) is no
// lease.
func parseLease(raw string) (lease, bool) {
	f := strings.Fields(raw)
	if len(f) != 3 || f[0] != "lakebase-lease" || !strings.HasPrefix(f[1], "pid=") || !strings.HasPrefix(f[2], "until=") {
		return lease{}, false
	}
	pid, err := strconv.ParseInt(f[1][len("pid="):], 10, 32)
	if err != nil || pid <= 0 {
		return lease{}, false
	}
	ns, err := strconv.ParseInt(f[2][len("until="):], 10, 64)
	if err != nil || ns <= 0 {
		return lease{}, false
	}
	return lease{pid: int(pid), until: time.Unix(0, ns)}, true
}

// openPrivate opens the file at path (creating it 0600 when create is set) only
// when it is a private regular file, the one a check before the open saw: never
// through a link, never a device or pipe. It returns nil otherwise.
func openPrivate(path string, create bool) *os.File {
	if fi, err := os.Lstat(path); err == nil {
		if checkPrivate(path, fi) != nil {
			return nil
		}
	} else if !create {
		return nil
	}
	flag := os.O_RDONLY
	if create {
		flag = os.O_RDWR | os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	li, lerr := os.Lstat(path)
	if err != nil || lerr != nil || !os.SameFile(fi, li) || checkPrivate(path, li) != nil {
		f.Close()
		return nil
	}
	return f
}

// holdLease writes the lease of the lock at lockPath, which this process has just
// taken, and renews it until the returned function is called; that one stops the
// renewal and blanks the lease, before the lock is let go. A lease that cannot be
// written (an unsafe file in its place) is skipped: waiters then find none, and
// treat the holder as they would a stopped one.
func holdLease(lockPath string) (release func()) {
	f := openPrivate(leasePath(lockPath), true)
	if f == nil {
		return func() {}
	}
	pid := os.Getpid()
	write := func() { f.WriteAt(lease{pid: pid, until: time.Now().Add(leaseTTL)}.record(), 0) }
	write()
	if fi, err := f.Stat(); err == nil && fi.Size() > leaseSize {
		f.Truncate(leaseSize) // whatever was longer
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(leaseRenew)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				write()
			case <-stop:
				return
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		// Overwritten in place, not truncated (a truncation would make some file
		// systems flush the file on close).
		f.WriteAt(releasedRecord, 0)
		f.Close()
	}
}

// leaseWatch follows, for a waiter, the lease of a lock another holds. A lease
// counts as renewed when its bytes change; the waiter's own clock says when.
type leaseWatch struct {
	path    string
	raw     string
	changed time.Time // when this waiter first saw the lease as it is now
	next    time.Time // when to read it again
	cur     lease
	valid   bool
}

func newLeaseWatch(lockPath string, now time.Time) *leaseWatch {
	w := &leaseWatch{path: leasePath(lockPath), changed: now}
	w.look(now)
	return w
}

// look reads the lease again, at most every leaseLook.
func (w *leaseWatch) look(now time.Time) {
	if now.Before(w.next) {
		return
	}
	w.next = now.Add(leaseLook)
	raw := ""
	if f := openPrivate(w.path, false); f != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 2*leaseSize))
		f.Close()
		raw = string(b)
	}
	if raw != w.raw {
		w.raw, w.changed = raw, now
	}
	w.cur, w.valid = parseLease(raw)
}

// lapsed reports whether the holder has stopped renewing its lease for longer than
// grace: its deadline passed, or (whatever deadline it claims, or with no lease at
// all) it has not changed for a lease's life.
func (w *leaseWatch) lapsed(now time.Time, grace time.Duration) bool {
	if w.valid && now.After(w.cur.until.Add(grace)) {
		return true
	}
	return now.Sub(w.changed) > leaseTTL+grace
}

// heldError is the error of a wait on lockPath that ends without the lock.
func (w *leaseWatch) heldError(lockPath string, now time.Time, err error) *LockHeldError {
	e := &LockHeldError{Lock: lockPath, Err: err}
	if w != nil && w.valid {
		e.PID, e.Until, e.Lapsed = w.cur.pid, w.cur.until, w.lapsed(now, 0)
	}
	return e
}

// takeLock takes lk, the lock file at lockPath, polling it while another holds it
// and watching that holder's lease. It returns a *LockHeldError when ctx ends (Err
// set) or when giveUp, asked after each poll, says to stop waiting (Err nil), and
// any error of the lock file itself as it is.
func takeLock(ctx context.Context, lk *flock.Flock, lockPath string, giveUp func(w *leaseWatch, now time.Time) bool) error {
	var w *leaseWatch
	delay := time.Millisecond
	var timer *time.Timer
	for {
		ok, err := lk.TryLock()
		if err != nil {
			return err
		}
		if ok {
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		now := time.Now()
		if w == nil {
			w = newLeaseWatch(lockPath, now)
		} else {
			w.look(now)
		}
		if err := ctx.Err(); err != nil {
			return w.heldError(lockPath, now, err)
		}
		if giveUp(w, now) {
			return w.heldError(lockPath, now, nil)
		}
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return w.heldError(lockPath, time.Now(), ctx.Err())
		case <-timer.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}
