package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"

	"github.com/zalando/go-keyring"
)

// KeyringService is the service name under which keyring stores keep their
// document: one item per store name.
const KeyringService = "lakebase"

// ErrNoKeyring is matched when the OS keyring cannot be reached.
var ErrNoKeyring = errors.New("lakebase: no OS keyring is available")

// KeyringStore keeps the settings document in the operating system's keyring —
// macOS Keychain, Windows Credential Manager, or the Secret Service over D-Bus on
// Linux (GNOME Keyring, KeePassXC) — through github.com/zalando/go-keyring, as one
// item (service "lakebase", account Name). It gives the guarantees of the file
// store: the same keyed document and whole-document validation, and an advisory
// lock on a file in the user's cache directory (one per user and item, whatever
// XDG_CACHE_HOME says) around every read-modify-write, so
// processes never redeem one rotating refresh token twice. Windows limits an item
// to 2,560 bytes: a document with several logins may not fit there (the error
// says so); use a file then.
type KeyringStore struct {
	Name     string
	lockPath string
}

var keyringName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// OpenKeyring returns the keyring store called name (letters, digits, '.', '_', '-').
// It does not touch the keyring: the first Update does, and says when none is there.
func OpenKeyring(name string) (*KeyringStore, error) {
	if !keyringName.MatchString(name) {
		return nil, fmt.Errorf("lakebase: keyring://%s: the name must be 1 to 64 letters, digits, '.', '_' or '-'", name)
	}
	dir, err := keyringLockDir()
	if err != nil {
		return nil, fmt.Errorf("lakebase: keyring://%s needs a user cache directory for its lock file: %w", name, err)
	}
	return &KeyringStore{Name: name, lockPath: filepath.Join(dir, "keyring-"+name+".lock")}, nil
}

// keyringLockDir is where keyring stores keep their lock files: one place per user,
// whatever XDG_CACHE_HOME or HOME say (the keyring item is the user's, so every
// process of the user must take the same lock). It is the cache directory under the
// home directory of the user's account (the password database, not $HOME), or
// the user cache directory when that home does not exist (a service account).
func keyringLockDir() (string, error) {
	if u, err := user.Current(); err == nil && u.HomeDir != "" && isDir(u.HomeDir) {
		switch runtime.GOOS {
		case "darwin":
			return filepath.Join(u.HomeDir, "Library", "Caches", "lakebase"), nil
		case "windows":
			return filepath.Join(u.HomeDir, "AppData", "Local", "lakebase"), nil
		}
		return filepath.Join(u.HomeDir, ".cache", "lakebase"), nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "lakebase"), nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Location is keyring://Name.
func (k *KeyringStore) Location() string { return "keyring://" + k.Name }

// Update runs fn on the document under the lock and writes it back when it changed.
func (k *KeyringStore) Update(ctx context.Context, fn func(*Settings) (bool, error)) error {
	return lockedUpdate(ctx, k.Location(), k.lockPath, fn, k.read, k.write)
}

func (k *KeyringStore) fail(msg string, err error) error {
	return &SettingsFileError{Path: k.Location(), Msg: msg, Err: err}
}

func (k *KeyringStore) unavailable(err error) error {
	return &SettingsFileError{Path: k.Location(), Unwritable: true, Err: fmt.Errorf("%w (%v)", ErrNoKeyring, err),
		Msg: "cannot reach the OS keyring (macOS Keychain, Windows Credential Manager, or a Secret Service such as GNOME Keyring over D-Bus); " +
			"use a file instead: OAuthSettingsLocation=<path>, which keeps the same document with mode 0600"}
}

func (k *KeyringStore) read() (*Settings, error) {
	data, err := keyring.Get(KeyringService, k.Name)
	if errors.Is(err, keyring.ErrNotFound) {
		return &Settings{Version: SettingsVersion, Tokens: map[string]*StoredToken{}}, nil
	}
	if err != nil {
		return nil, k.unavailable(err)
	}
	var s Settings
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		return nil, k.fail("is corrupt (not the JSON this driver writes); it was left as it is: delete the keyring item to start again", jsonErr(err))
	}
	if s.Version != SettingsVersion {
		return nil, k.fail(fmt.Sprintf("has version %d, this driver reads version %d; it was left as it is", s.Version, SettingsVersion), nil)
	}
	if err := s.check(); err != nil {
		return nil, k.fail("is corrupt ("+err.Error()+"); it was left as it is", nil)
	}
	if s.Tokens == nil {
		s.Tokens = map[string]*StoredToken{}
	}
	return &s, nil
}

func (k *KeyringStore) write(s *Settings) error {
	data, err := json.Marshal(s)
	if err != nil {
		return k.fail("cannot be encoded", err)
	}
	if err := keyring.Set(KeyringService, k.Name, string(data)); err != nil {
		if errors.Is(err, keyring.ErrSetDataTooBig) {
			return k.fail(fmt.Sprintf("is too large for this keyring (%d bytes); use a file for OAuthSettingsLocation", len(data)), nil)
		}
		return k.unavailable(err)
	}
	return nil
}
