package settings

import (
	"context"
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
// here, find it stored. It is separate from the lock of Update: fn may call Update.
// A wait honours ctx. Where the lock cannot be created (a read-only place), fn runs
// without it.
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
	if lockPath != "" {
		key = lockPath // every FileStore of one path in this process
	}
	pm := exclusiveLock(key + "\x00" + name)
	if err := pm.Lock(ctx); err != nil {
		return err
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
	ok, err := lk.TryLockContext(ctx, 5*time.Millisecond)
	if err != nil && ctx.Err() == nil && cannotCreate(err) {
		return fn()
	}
	if err != nil || !ok {
		if err == nil {
			err = ctx.Err()
		}
		return err
	}
	defer lk.Unlock()
	return fn()
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
