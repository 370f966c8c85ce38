package settings

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/lakebase-go/lakebase/internal/ctxsync"
)

// Exclusive runs fn while holding the lock called name of store st — across
// processes for a file or keyring store, within the process for a memory store —
// so that of several processes starting at once on one store, one does a piece of
// work (mints a credential, looks up a host) and stores it, and the others, waiting
// here, find it stored. It is separate from the lock of Update: fn may call Update,
// and everything fn keeps goes through Update, so the store stays whole whoever
// runs fn.
//
// The lock only saves requests, so a wait for it is short: the holder keeps a
// lease on it (its process id and a deadline, renewed while it works), and a
// waiter runs fn without the lock once that lease lapses (the holder is stopped or
// hung), or after at most 10 s and half of what is left of ctx's deadline, whichever
// comes first. A wait that ctx ends returns a *LockHeldError naming the lock and its
// holder. Where the lock cannot be created (a read-only place), fn runs without it.
func Exclusive(ctx context.Context, st Store, name string, fn func() error) error {
	var lockPath string
	switch s := st.(type) {
	case *FileStore:
		lockPath = s.Path + "." + name + ".lock"
	case *KeyringStore:
		lockPath = strings.TrimSuffix(s.lockPath, ".lock") + "." + name + ".lock"
	case interface{ Unwrap() Store }:
		return Exclusive(ctx, s.Unwrap(), name, fn)
	}
	key := fmt.Sprintf("%p", st) // a memory store: the store itself
	lockName := "\"" + name + "\" of " + st.Location()
	if lockPath != "" {
		key = lockPath // every FileStore of one path in this process
		lockName = lockPath
	}
	giveUpAt := time.Now().Add(exclusiveWait(ctx, time.Now()))
	wctx, cancel := context.WithDeadline(ctx, giveUpAt)
	pm := exclusiveLock(key + "\x00" + name)
	err := pm.Lock(wctx)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		return &LockHeldError{Lock: lockName, PID: os.Getpid(), Err: ctx.Err()}
	case err != nil: // another caller in this process has held it too long
		return fn()
	}
	defer pm.Unlock()
	if lockPath == "" {
		return fn()
	}
	if fi, err := os.Lstat(lockPath); err == nil {
		if err := checkPrivate(lockPath, fi); err != nil {
			return &SettingsFileError{Path: st.Location(), Msg: "its lock file " + lockPath + " " + err.Error()}
		}
	}
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
		return fn() // nowhere to lock: the work is only done more than once
	}
	lk := flock.New(lockPath, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	err = takeLock(ctx, lk, lockPath, func(w *leaseWatch, now time.Time) bool {
		return w.lapsed(now, 0) || now.After(giveUpAt)
	})
	var held *LockHeldError
	switch {
	case errors.As(err, &held) && held.Err == nil:
		return fn() // the holder is stopped, hung or slow: do the work here
	case err != nil && ctx.Err() == nil && cannotCreate(err):
		return fn()
	case err != nil:
		return err
	}
	defer lk.Unlock()
	defer holdLease(lockPath)()
	return fn()
}

// exclusiveWait is how long an Exclusive wait that starts at now may last:
// exclusiveMaxWait, and at most half the time ctx has left, so that the work can
// still be done within ctx when the holder never lets go.
func exclusiveWait(ctx context.Context, now time.Time) time.Duration {
	d := exclusiveMaxWait
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, dl.Sub(now)/2)
	}
	return max(d, 0)
}

var (
	exclusiveMu sync.Mutex
	exclusives  = map[string]*ctxsync.Mutex{}
)

func exclusiveLock(key string) *ctxsync.Mutex {
	exclusiveMu.Lock()
	defer exclusiveMu.Unlock()
	m, ok := exclusives[key]
	if !ok {
		m = &ctxsync.Mutex{}
		exclusives[key] = m
	}
	return m
}
