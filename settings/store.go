package settings

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/ctxsync"

	"github.com/lakebase-go/lakebase/internal/cache"
)

// SettingsVersion is the version of the settings file format.
const SettingsVersion = 1

// Settings is the content of a token store: tokens keyed by workspace, client id
// and scheme, and the PKCE verifiers of pending authorizations keyed by state.
type Settings struct {
	Version int                     `json:"version"`
	Tokens  map[string]*StoredToken `json:"tokens"`
	Pending map[string]*Pending     `json:"pending,omitempty"`
	// Credentials are database credentials, keyed by the token key plus what they
	// were minted for, so a new process can log in without a request.
	Credentials map[string]*StoredCredential `json:"credentials,omitempty"`
	// Lookups are the hosts of databases (workspace|database); UserNames the
	// Postgres user names of token keys (SCIM userName), each tied to the login it
	// came from. Neither is secret.
	Lookups   map[string]*StoredLookup `json:"lookups,omitempty"`
	UserNames map[string]*StoredUser   `json:"user_names,omitempty"`
	// HostMetadata is each workspace host's /.well-known/databricks-config (not
	// secret), keyed by the lower-cased host URL.
	HostMetadata map[string]*StoredHostMetadata `json:"host_metadata,omitempty"`
}

// StoredHostMetadata is a host's metadata as read.
type StoredHostMetadata struct {
	OIDCEndpoint string    `json:"oidc_endpoint,omitempty"`
	AccountID    string    `json:"account_id,omitempty"`
	WorkspaceID  string    `json:"workspace_id,omitempty"`
	HostType     string    `json:"host_type,omitempty"`
	Updated      time.Time `json:"updated"`
}

// StoredUser is the Postgres user name of a login (its SCIM userName).
type StoredUser struct {
	Name  string `json:"name"`
	Login string `json:"login"` // the StoredToken.Login it was asked with
}

// StoredCredential is a stored database credential and what it was minted for. Its
// fmt forms hide the credential.
type StoredCredential struct {
	Token     string    `json:"token"`
	Expiry    time.Time `json:"expiry"`
	Minted    time.Time `json:"minted"`
	Workspace string    `json:"workspace"`
	Database  string    `json:"database"` // the endpoint or instance
	Host      string    `json:"host"`
	User      string    `json:"user"`
	// Login is the StoredToken.Login of the login the credential was minted with; a
	// credential is used only while that login is the stored one.
	Login string `json:"login"`
}

// String hides the credential.
func (c StoredCredential) String() string {
	return fmt.Sprintf("settings.StoredCredential{%s@%s (%s), expiry: %s}", c.User, c.Host, c.Database, c.Expiry.Format(time.RFC3339))
}

// Format hides the credential for every fmt verb.
func (c StoredCredential) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// Usable reports whether the credential may still be handed out at now: not within
// the last fifth of its life (at most 30 s), the margin the cache uses.
func (c *StoredCredential) Usable(now time.Time) bool {
	life := c.Expiry.Sub(c.Minted)
	return c.Token != "" && now.Before(c.Expiry.Add(-cache.Margin(life)))
}

// StoredLookup is the host of a database, as the workspace API answered it.
type StoredLookup struct {
	Endpoint string    `json:"endpoint,omitempty"` // the endpoint a project and branch resolved to
	Host     string    `json:"host"`
	State    string    `json:"state,omitempty"`
	Updated  time.Time `json:"updated"`
}

// StoredToken is a stored workspace token. Its fmt forms hide the tokens.
type StoredToken struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // zero: never expires
	// Seed fingerprints the login material of the connection string (tokens, or an
	// authorization code) that this entry started from; different material means a
	// new login, which replaces this one.
	Seed string `json:"seed,omitempty"`
	// Login identifies the login this token belongs to: new for every login (a
	// person may be someone else), kept by refreshes. What is derived from a login
	// (credentials, user name) records it.
	Login   string    `json:"login"`
	Updated time.Time `json:"updated"`
}

// NewStoredToken is the stored form of t, a token of the login named login.
func NewStoredToken(t *oauth2.Token, seed, login string) *StoredToken {
	return &StoredToken{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType,
		Scope: scopeOf(t), Expiry: t.Expiry, Seed: seed, Login: login, Updated: time.Now()}
}

// scopeOf is the scope a token endpoint granted, when it said.
func scopeOf(t *oauth2.Token) string {
	if s, ok := t.Extra("scope").(string); ok {
		return s
	}
	return ""
}

// NewLoginID names a new login.
func NewLoginID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Token returns the stored token as an *oauth2.Token.
func (e *StoredToken) Token() *oauth2.Token {
	return &oauth2.Token{AccessToken: e.AccessToken, RefreshToken: e.RefreshToken, TokenType: e.TokenType, Expiry: e.Expiry}
}

// String hides the tokens.
func (e StoredToken) String() string {
	return fmt.Sprintf("settings.StoredToken{expiry: %s, refresh: %v, updated: %s}", e.Expiry.Format(time.RFC3339),
		e.RefreshToken != "", e.Updated.Format(time.RFC3339))
}

// Format hides the tokens for every fmt verb.
func (e StoredToken) Format(f fmt.State, _ rune) { fmt.Fprint(f, e.String()) }

// Pending is an authorization waiting for its code.
type Pending struct {
	Verifier    string    `json:"verifier"`
	CallbackURL string    `json:"callback_url"`
	Scope       string    `json:"scope"`
	Key         string    `json:"key"` // the token key the authorization is for
	Created     time.Time `json:"created"`
}

// String hides the verifier.
func (p Pending) String() string {
	return fmt.Sprintf("settings.Pending{callback: %s, created: %s}", p.CallbackURL, p.Created.Format(time.RFC3339))
}

// Format hides the verifier for every fmt verb.
func (p Pending) Format(f fmt.State, _ rune) { fmt.Fprint(f, p.String()) }

// PendingTTL is how long a pending authorization's verifier is kept.
const PendingTTL = 10 * time.Minute

// Store holds Settings. Update is the only way in: it runs fn on the current
// settings under the store's lock (across processes for a file), and writes them
// back when they changed (compared as a whole; fn's changed result is advisory).
type Store interface {
	Update(ctx context.Context, fn func(s *Settings) (changed bool, err error)) error
	// Location names the store for messages: a file path or memory://id.
	Location() string
}

// OpenStore opens the store at location: "memory://<id>" (shared within the
// process by id) or a file path.
func OpenStore(location string) (Store, error) {
	if id, ok := strings.CutPrefix(location, "memory://"); ok {
		return MemoryStore(id), nil
	}
	if name, ok := strings.CutPrefix(location, "keyring://"); ok {
		return OpenKeyring(name)
	}
	if location == "" {
		return nil, errors.New("lakebase: empty settings location")
	}
	abs, err := filepath.Abs(location)
	if err != nil {
		return nil, fmt.Errorf("lakebase: settings location %s: %w", location, err)
	}
	return &FileStore{Path: abs}, nil
}

// --- memory ---

type memStore struct {
	id string
	mu ctxsync.Mutex
	s  Settings
}

var (
	memMu     sync.Mutex
	memStores = map[string]*memStore{}
)

// MemoryStore returns the in-process store named id (created on first use).
// Connectors using the same id share tokens.
func MemoryStore(id string) Store {
	memMu.Lock()
	defer memMu.Unlock()
	if m, ok := memStores[id]; ok {
		return m
	}
	m := &memStore{id: id, s: Settings{Version: SettingsVersion, Tokens: map[string]*StoredToken{}}}
	memStores[id] = m
	return m
}

// NewPrivateMemoryStore returns an in-memory store shared with nobody.
func NewPrivateMemoryStore() Store {
	return &memStore{id: "private", s: Settings{Version: SettingsVersion, Tokens: map[string]*StoredToken{}}}
}

func (m *memStore) Location() string { return "memory://" + m.id }

func (m *memStore) Update(ctx context.Context, fn func(*Settings) (bool, error)) error {
	if err := m.mu.Lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	pruneExpiredPending(&m.s, time.Now())
	_, err := fn(&m.s)
	pruneExpiredPending(&m.s, time.Now())
	return err
}

// --- file ---

// ErrSettingsFile is matched by every error about a settings file.
var ErrSettingsFile = errors.New("lakebase: settings file")

// SettingsFileError reports a settings file that cannot be used. The file is left as
// it was.
type SettingsFileError struct {
	Path string
	Msg  string
	Err  error
	// Unwritable is set when the file or its directory cannot be created, locked or
	// written (as opposed to a file that exists and is corrupt or unsafe).
	Unwritable bool
	// ReadOnly is set when the store could be read but is in a place that cannot be
	// written (a read-only mount).
	ReadOnly bool
}

// Error names the file and what is wrong with it.
func (e *SettingsFileError) Error() string {
	kind := "settings file "
	if strings.Contains(e.Path, "://") {
		kind = "settings store "
	}
	s := "lakebase: " + kind + e.Path + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *SettingsFileError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrSettingsFile) true.
func (e *SettingsFileError) Is(t error) bool { return t == ErrSettingsFile }

// FileStore keeps Settings in a JSON file: directory 0700, file 0600, written to a
// temporary file and renamed, with an advisory lock on a sibling ".lock" file held
// around every read-modify-write, so processes sharing the file never race. The
// holder of a lock keeps a lease on it in a file beside it (<lock>.lease: its
// process id and a deadline, renewed while it works), so a waiter behind a holder
// that is stopped or hung fails naming it instead of waiting on; the lock itself is
// never skipped.
type FileStore struct {
	Path string
}

var (
	fileMuMu sync.Mutex
	fileMus  = map[string]*ctxsync.Mutex{}
)

// processLock serializes this process's users of one path (flock alone would make
// them poll); a waiter gives up when its context ends.
func processLock(path string) *ctxsync.Mutex {
	fileMuMu.Lock()
	defer fileMuMu.Unlock()
	m, ok := fileMus[path]
	if !ok {
		m = &ctxsync.Mutex{}
		fileMus[path] = m
	}
	return m
}

// Location returns the file path.
func (f *FileStore) Location() string { return f.Path }

// Update runs fn on the file's settings under the lock and writes them back when
// they changed.
func (f *FileStore) Update(ctx context.Context, fn func(*Settings) (bool, error)) error {
	return lockedUpdate(ctx, f.Path, f.Path+".lock", fn, f.sweepAndRead, f.write)
}

// sweepAndRead removes the temporary files of writers that died mid-write (each
// holds a whole document, tokens included), then reads the file. It runs under the
// lock, which every writer holds while its temporary file exists: any such file
// found then is stale.
func (f *FileStore) sweepAndRead() (*Settings, error) {
	dir, prefix := filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".tmp-"
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return f.read()
}

// lockedUpdate is the read-modify-write of every persistent store: under this
// process's lock for key and an advisory lock on lockPath (across processes), read
// the settings, run fn, and write them back when they changed.
func lockedUpdate(ctx context.Context, key, lockPath string, fn func(*Settings) (bool, error),
	read func() (*Settings, error), write func(*Settings) error) error {
	pm := processLock(key)
	if err := pm.Lock(ctx); err != nil {
		return &SettingsFileError{Path: key, Msg: "cannot take its lock", Err: &LockHeldError{Lock: lockPath, PID: os.Getpid(), Err: err}}
	}
	defer pm.Unlock()

	if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
		return &SettingsFileError{Path: key, Msg: "cannot create the directory of " + lockPath, Err: err, Unwritable: true}
	}
	if fi, err := os.Lstat(lockPath); err == nil {
		if err := checkPrivate(lockPath, fi); err != nil {
			return &SettingsFileError{Path: key, Msg: "its lock file " + lockPath + " " + err.Error()}
		}
	}
	lk := flock.New(lockPath, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	// The wait ends with ctx, or once the holder has let its lease lapse by a
	// lease's life more (it is stopped or hung): this lock is never skipped, so a
	// waiter fails then rather than wait for a process that may never run again. A
	// holder without a valid lease is waited for as long as ctx lasts.
	err := takeLock(ctx, lk, lockPath, func(w *leaseWatch, now time.Time) bool {
		return w.valid && w.lapsed(now, leaseTTL)
	})
	if err != nil && ctx.Err() == nil && cannotCreate(err) {
		// A read-only place (a mounted secret): the settings are read without the
		// lock (a writer renames whole files, so a read is never torn) and used as
		// they are; only a change that must be written fails.
		return readOnlyUpdate(key, lockPath, err, fn, read)
	}
	if held := (*LockHeldError)(nil); errors.As(err, &held) {
		return &SettingsFileError{Path: key, Msg: "cannot take its lock", Err: err}
	}
	if err != nil {
		return &SettingsFileError{Path: key, Msg: "cannot take the lock " + lockPath, Err: err, Unwritable: true}
	}
	defer lk.Unlock()
	defer holdLease(lockPath)()

	s, changed, err := readAndApply(fn, read)
	if err != nil || !changed {
		return err
	}
	return write(s)
}

// readAndApply reads the settings and runs fn on them (pending logins past their
// time pruned before and after); changed reports whether the document changed.
func readAndApply(fn func(*Settings) (bool, error), read func() (*Settings, error)) (s *Settings, changed bool, err error) {
	if s, err = read(); err != nil {
		return nil, false, err
	}
	before, _ := json.Marshal(s)
	pruneExpiredPending(s, time.Now())
	if _, err := fn(s); err != nil {
		return nil, false, err
	}
	pruneExpiredPending(s, time.Now())
	after, _ := json.Marshal(s)
	return s, string(before) != string(after), nil
}

// cannotCreate reports whether err says a file cannot be created or opened for
// writing here: a read-only file system, or no permission.
func cannotCreate(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission)
}

// readOnlyUpdate runs fn on settings read without a lock, for a store in a place
// that cannot be written; a change fn makes cannot be kept and is reported.
func readOnlyUpdate(key, lockPath string, lockErr error, fn func(*Settings) (bool, error), read func() (*Settings, error)) error {
	_, changed, err := readAndApply(fn, read)
	if err != nil || !changed {
		return err
	}
	return &SettingsFileError{Path: key, Msg: "is read-only here (its lock " + lockPath + " cannot be created); a change could not be written",
		Err: lockErr, Unwritable: true, ReadOnly: true}
}

func (f *FileStore) read() (*Settings, error) {
	fi, err := os.Lstat(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return &Settings{Version: SettingsVersion, Tokens: map[string]*StoredToken{}}, nil
	}
	if err != nil {
		return nil, &SettingsFileError{Path: f.Path, Msg: "cannot be read", Err: err}
	}
	if err := checkPrivate(f.Path, fi); err != nil {
		return nil, &SettingsFileError{Path: f.Path, Msg: err.Error()}
	}
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, &SettingsFileError{Path: f.Path, Msg: "cannot be read", Err: err}
	}
	var s Settings
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, &SettingsFileError{Path: f.Path, Msg: "is corrupt (not the JSON this driver writes); it was left as it is: move it away or fix it", Err: jsonErr(err)}
	}
	if s.Version != SettingsVersion {
		return nil, &SettingsFileError{Path: f.Path, Msg: fmt.Sprintf("has version %d, this driver reads version %d; it was left as it is", s.Version, SettingsVersion)}
	}
	if err := s.check(); err != nil {
		return nil, &SettingsFileError{Path: f.Path, Msg: "is corrupt (" + err.Error() + "); it was left as it is: move it away or fix it"}
	}
	if s.Tokens == nil {
		s.Tokens = map[string]*StoredToken{}
	}
	return &s, nil
}

// check validates a whole settings document: every entry present and usable. It
// names what is wrong by its place, never by a value.
func (s *Settings) check() error {
	i := 0
	for k, t := range s.Tokens {
		i++
		switch {
		case t == nil:
			return fmt.Errorf("token entry %d is null", i)
		case k == "" || strings.Count(k, "|") < 2 || strings.Count(k, "|") > 3: // workspace|client|scheme[|scope]
			return fmt.Errorf("token entry %d has a malformed key", i)
		case t.AccessToken == "" && t.RefreshToken == "" && t.Seed == "":
			return fmt.Errorf("token entry %d holds no token", i)
		}
	}
	for k, c := range s.Credentials {
		if c == nil || k == "" || c.Token == "" {
			return fmt.Errorf("a database credential entry is empty")
		}
	}
	for k, l := range s.Lookups {
		if l == nil || k == "" || l.Host == "" {
			return fmt.Errorf("a host lookup entry is empty")
		}
	}
	i = 0
	for state, p := range s.Pending {
		i++
		switch {
		case p == nil:
			return fmt.Errorf("pending login %d is null", i)
		case state == "" || p.Verifier == "":
			return fmt.Errorf("pending login %d has no state or verifier", i)
		case p.Created.IsZero():
			return fmt.Errorf("pending login %d has no creation time", i)
		}
	}
	return nil
}

// jsonErr keeps a JSON error's position but never the file's content.
func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("unexpected JSON %s for field %q at byte %d", te.Value, te.Field, te.Offset)
	}
	return errors.New("invalid JSON")
}

func (f *FileStore) write(s *Settings) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return &SettingsFileError{Path: f.Path, Msg: "cannot be encoded", Err: err}
	}
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return &SettingsFileError{Path: f.Path, Msg: "cannot be written", Err: err, Unwritable: true}
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(data)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), f.Path)
		}
		if err != nil {
			return &SettingsFileError{Path: f.Path, Msg: "cannot be written", Err: err, Unwritable: true}
		}
	} else {
		tmp.Close()
		return &SettingsFileError{Path: f.Path, Msg: "cannot be written", Err: err, Unwritable: true}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// MaxPending is how many pending logins a store keeps; beyond it the oldest are
// dropped. A web app's login link lets anyone start logins, so their number (and the
// size of the file rewritten on each) must stay bounded.
const MaxPending = 64

func pruneExpiredPending(s *Settings, now time.Time) {
	for st, p := range s.Pending {
		if p == nil || now.Sub(p.Created) > PendingTTL {
			delete(s.Pending, st)
		}
	}
	for len(s.Pending) > MaxPending {
		oldest := ""
		for st, p := range s.Pending {
			if oldest == "" || p.Created.Before(s.Pending[oldest].Created) {
				oldest = st
			}
		}
		delete(s.Pending, oldest)
	}
}
