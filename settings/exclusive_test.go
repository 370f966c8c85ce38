package settings

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// backstop bounds a wait that must end on its own; it only turns a hang into a
// failure, it is no claim about speed.
const backstop = 3 * time.Minute

func TestMain(m *testing.M) {
	if os.Getenv("SETTINGS_HELPER") != "" {
		os.Exit(helperHold())
	}
	os.Exit(m.Run())
}

// helperHold runs in a child process: it takes one of the store's locks
// (SETTINGS_HELPER=exclusive: the Exclusive lock SETTINGS_HELPER_NAME; update: the
// lock of Update), says "holding", and keeps it until a line arrives on stdin; then
// it stores an entry named "holder" through Update and says "done".
func helperHold() int {
	st, err := OpenStore(os.Getenv("SETTINGS_HELPER_PATH"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ctx := context.Background()
	hold := func() {
		fmt.Println("holding")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	switch os.Getenv("SETTINGS_HELPER") {
	case "exclusive":
		err = Exclusive(ctx, st, os.Getenv("SETTINGS_HELPER_NAME"), func() error {
			hold()
			return st.Update(ctx, addLookup("holder"))
		})
	case "update":
		err = st.Update(ctx, func(s *Settings) (bool, error) {
			hold()
			return addLookup("holder")(s)
		})
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("done")
	return 0
}

func addLookup(name string) func(*Settings) (bool, error) {
	return func(s *Settings) (bool, error) {
		if s.Lookups == nil {
			s.Lookups = map[string]*StoredLookup{}
		}
		s.Lookups[name] = &StoredLookup{Host: name + ".example", Updated: time.Now()}
		return true, nil
	}
}

// holder is a child process holding one of a store's locks.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startHolder starts a process that takes the lock (kind "exclusive" with name, or
// "update") of the file store at path, and returns once it holds it.
func startHolder(t *testing.T, kind, path, name string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SETTINGS_HELPER="+kind, "SETTINGS_HELPER_PATH="+path, "SETTINGS_HELPER_NAME="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			h.cmd.Process.Kill() // a stopped process too
			h.cmd.Wait()
		}
	})
	if line, err := h.out.ReadString('\n'); strings.TrimSpace(line) != "holding" {
		t.Fatalf("the holder did not take the lock: %q %v", line, err)
	}
	return h
}

// release lets the holder go on and waits for it to end; it must have stored its
// entry and ended well.
func (h *holder) release(t *testing.T) {
	t.Helper()
	io.WriteString(h.stdin, "go\n")
	rest, _ := io.ReadAll(h.out)
	if err := h.cmd.Wait(); err != nil || !strings.Contains(string(rest), "done") {
		t.Fatalf("the holder, released: %v\n%s", err, rest)
	}
}

// runBounded runs fn and fails t if it has not returned within the backstop.
func runBounded(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(backstop):
		t.Fatalf("%s did not return within %s", what, backstop)
		return nil
	}
}

// readStore reads the settings file as it is on disk: whole JSON, with the
// lookups named.
func readStore(t *testing.T, path string, names ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s Settings
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("the store is not whole JSON: %v\n%s", err, data)
	}
	for _, n := range names {
		if s.Lookups[n] == nil {
			t.Fatalf("the store lacks %q:\n%s", n, data)
		}
	}
}

// A process that holds an Exclusive lock and never lets go while it stays alive
// (its lease renewed) holds up the others only for a bounded time: with a deadline
// they go on without the lock in time to do the work themselves; with none (a
// connection string's Timeout=0), after a bound of their own.
func TestExclusive_LiveHolderThatNeverReleasesIsWaitedForBoundedly(t *testing.T) {
	defer func(d time.Duration) { exclusiveMaxWait = d }(exclusiveMaxWait)
	exclusiveMaxWait = 2 * time.Second // the waiter's bound (the holder's lease is its own)
	path := filepath.Join(t.TempDir(), "settings.json")
	h := startHolder(t, "exclusive", path, "credential")
	st, _ := OpenStore(path)
	withDeadline, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, ctx := range map[string]context.Context{"deadline": withDeadline, "no deadline": context.Background()} {
		err := runBounded(t, name, func() error {
			return Exclusive(ctx, st, "credential", func() error { return st.Update(ctx, addLookup(strings.ReplaceAll(name, " ", "-"))) })
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	h.release(t)
	readStore(t, path, "holder", "deadline", "no-deadline")
}

// A wait that the caller's context ends names the lock and the process holding it,
// and still matches the context's error.
func TestExclusive_WaitEndedByContextNamesTheLockAndHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	h := startHolder(t, "exclusive", path, "credential")
	st, _ := OpenStore(path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := Exclusive(ctx, st, "credential", func() error { ran = true; return nil })
	var lh *LockHeldError
	if ran || !errors.As(err, &lh) || !errors.Is(err, ErrLockHeld) || !errors.Is(err, context.Canceled) {
		t.Fatalf("ran %v, err %v", ran, err)
	}
	lock := path + ".credential.lock"
	if lh.Lock != lock || lh.PID != h.cmd.Process.Pid ||
		!strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), strconv.Itoa(h.cmd.Process.Pid)) {
		t.Fatalf("the error names lock %q, process %d: %v", lh.Lock, lh.PID, err)
	}
	h.release(t)
}

// forgeLease writes content into the lease file of lock.
func forgeLease(t *testing.T, lock, content string) {
	t.Helper()
	if err := os.WriteFile(lock+".lease", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// holdRaw takes the lock file as any process could, with no lease of its own.
func holdRaw(t *testing.T, lock string) {
	t.Helper()
	lk := flock.New(lock, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	if err := lk.Lock(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Unlock() })
}

// The lease file is another process's word: whatever it says — that a holder will
// live for ever, or garbage — an Exclusive wait stays bounded, and none of its
// bytes reach an error.
func TestExclusive_ForgedLeaseCannotHoldOthersUp(t *testing.T) {
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, content := range map[string]string{
		"for ever": fmt.Sprintf("lakebase-lease pid=1 until=%d\n", far.UnixNano()),
		"garbage":  "secret-" + strings.Repeat("x", 1<<20),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "settings.json")
			lock := path + ".mint.lock"
			holdRaw(t, lock)
			forgeLease(t, lock, content)
			st, _ := OpenStore(path)
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			err := Exclusive(cancelled, st, "mint", func() error { return nil })
			if !errors.Is(err, ErrLockHeld) || !strings.Contains(err.Error(), lock) || strings.Contains(err.Error(), "secret") {
				t.Fatalf("cancelled: %v", err)
			}
			ran := false
			err = runBounded(t, "Exclusive", func() error {
				return Exclusive(context.Background(), st, "mint", func() error { ran = true; return st.Update(context.Background(), addLookup("waiter")) })
			})
			if err != nil || !ran {
				t.Fatalf("ran %v: %v", ran, err)
			}
			readStore(t, path, "waiter")
		})
	}
}

// A forged lease never lets Update past its lock: one that says the holder has
// lapsed makes a waiter fail (naming the lock) without running fn or writing; one
// that says a holder lives for ever does not stop Update when nobody holds the
// lock.
func TestUpdate_ForgedLeaseNeverSkipsTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	st, _ := OpenStore(path)
	if err := st.Update(context.Background(), addLookup("before")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	lock := path + ".lock"

	forgeLease(t, lock, fmt.Sprintf("lakebase-lease pid=4242 until=%d\n", time.Now().Add(-time.Hour).UnixNano()))
	holdRaw(t, lock)
	ran := false
	err := runBounded(t, "Update", func() error {
		return st.Update(context.Background(), func(s *Settings) (bool, error) { ran = true; return addLookup("after")(s) })
	})
	var lh *LockHeldError
	if ran || !errors.As(err, &lh) || !errors.Is(err, ErrSettingsFile) || lh.PID != 4242 || !lh.Lapsed || !strings.Contains(err.Error(), lock) {
		t.Fatalf("ran %v: %v", ran, err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatalf("the store changed:\n%s", after)
	}

	free := filepath.Join(t.TempDir(), "settings.json")
	forgeLease(t, free+".lock", fmt.Sprintf("lakebase-lease pid=1 until=%d\n", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()))
	fst, _ := OpenStore(free)
	if err := fst.Update(context.Background(), addLookup("free")); err != nil {
		t.Fatal(err)
	}
	readStore(t, free, "free")
}

// A lease file that is a symbolic link is never written through: the holder
// leaves the file it points to as it was.
func TestExclusive_LeaseNeverWrittenThroughALink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep me"), 0o600)
	path := filepath.Join(dir, "settings.json")
	os.Symlink(victim, path+".mint.lock.lease")
	st, _ := OpenStore(path)
	if err := Exclusive(context.Background(), st, "mint", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep me" {
		t.Fatalf("the linked file was written: %q", data)
	}
}

// An Exclusive wait leaves at least half of its caller's deadline for the work.
func TestExclusive_WaitLeavesHalfTheDeadline(t *testing.T) {
	now := time.Now()
	for name, tc := range map[string]struct {
		left time.Duration // to the deadline; 0: none
		want time.Duration
	}{
		"none":   {0, exclusiveMaxWait},
		"long":   {10 * time.Minute, exclusiveMaxWait},
		"short":  {6 * time.Second, 3 * time.Second},
		"passed": {-time.Second, 0},
	} {
		ctx := context.Background()
		if tc.left != 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, now.Add(tc.left))
			defer cancel()
		}
		if got := exclusiveWait(ctx, now); got != tc.want {
			t.Errorf("%s: waits %s, want %s", name, got, tc.want)
		}
	}
}
