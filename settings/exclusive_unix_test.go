//go:build unix

package settings

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stop stops the holder as SIGSTOP (or a debugger, or ^Z) does: it keeps its locks
// and runs nothing, its lease's renewal included.
func (h *holder) stop(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (h *holder) resume(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// The reproduction of a fleet whose credential lock's holder was stopped: the
// others, with a deadline (Timeout) or without one (Timeout=0), each go on without
// the lock once its lease has lapsed and do the work themselves. When the holder
// resumes, it finishes its own work through Update: the store stays whole and
// keeps every entry.
func TestExclusive_StoppedHolderDoesNotStopTheOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	h := startHolder(t, "exclusive", path, "credential")
	h.stop(t)
	st, _ := OpenStore(path)
	withDeadline, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, ctx := range map[string]context.Context{"deadline": withDeadline, "no-deadline": context.Background()} {
		ran := false
		err := runBounded(t, name, func() error {
			return Exclusive(ctx, st, "credential", func() error {
				ran = true
				return st.Update(ctx, addLookup(name))
			})
		})
		if err != nil || !ran {
			t.Fatalf("%s: ran %v: %v", name, ran, err)
		}
	}
	h.resume(t)
	h.release(t)
	readStore(t, path, "holder", "deadline", "no-deadline")
}

// Update's lock is never skipped (a refresh token is single-use): a waiter behind a
// stopped holder does not run fn and fails — once the holder's lease has lapsed,
// context or none — naming the lock file and the holder's process. The store is
// left as it was, and the holder, resumed, completes its update.
func TestUpdate_StoppedHolderFailsNamingTheLockAndHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	st, _ := OpenStore(path)
	if err := st.Update(context.Background(), addLookup("before")); err != nil {
		t.Fatal(err)
	}
	h := startHolder(t, "update", path, "")
	h.stop(t)
	before, _ := os.ReadFile(path)
	lock, pid := path+".lock", h.cmd.Process.Pid
	withDeadline, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, ctx := range map[string]context.Context{"deadline": withDeadline, "no-deadline": context.Background()} {
		ran := false
		err := runBounded(t, name, func() error {
			return st.Update(ctx, func(s *Settings) (bool, error) { ran = true; return addLookup("waiter")(s) })
		})
		var lh *LockHeldError
		if ran || !errors.As(err, &lh) || !errors.Is(err, ErrSettingsFile) || !errors.Is(err, ErrLockHeld) {
			t.Fatalf("%s: ran %v: %v", name, ran, err)
		}
		if lh.Lock != lock || lh.PID != pid || !lh.Lapsed ||
			!strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), strconv.Itoa(pid)) {
			t.Fatalf("%s: the error names lock %q, process %d: %v", name, lh.Lock, lh.PID, err)
		}
		var se *SettingsFileError
		if errors.As(err, &se) && se.Unwritable {
			t.Fatalf("%s: a held lock reported as an unwritable store (a caller would go on without it): %v", name, err)
		}
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatalf("the store changed while its lock was held:\n%s", after)
	}
	h.resume(t)
	h.release(t)
	readStore(t, path, "before", "holder")
}
