package lakebasetest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/lakebase-go/lakebase/internal/pgcluster"
	"github.com/lakebase-go/lakebase/internal/testca"
)

// A data directory (Options.DataDir) keeps what a development database needs to
// survive a restart of the emulator:
//
//	VERSION          the layout's version; another version is refused, never changed
//	lock             held (flock) by the running emulator, with its process id
//	state.json       0600: ports, signing key, CA, identities and their secrets, roles, revocations
//	ca.crt           the front door's CA certificate (the same across restarts)
//	postgres/        PostgreSQL's data directory, server key and log
//	branches/<id>/   the same, of each branch made through the API (state.json lists them)
//
// The pooler (PgBouncer) keeps no state of its own: its configuration is written
// anew at each start.

// DataDirVersion is the first line of a data directory's VERSION file.
const DataDirVersion = "lakebase-local data directory 1"

// ErrDataDirInUse is matched by the error of NewServer when another emulator (of
// this or another process) holds the data directory.
var ErrDataDirInUse = errors.New("lakebasetest: the data directory is in use")

// ErrDataDir is matched by the error of NewServer for a data directory it cannot
// use: of another version, damaged, or not a data directory at all. It is left as
// it was.
var ErrDataDir = errors.New("lakebasetest: the data directory cannot be used")

// dataDirError names the directory, what is wrong and what to do.
type dataDirError struct {
	dir, msg string
	inUse    bool
}

func (e *dataDirError) Error() string {
	return "lakebasetest: data directory " + e.dir + ": " + e.msg
}

func (e *dataDirError) Is(target error) bool {
	return target == ErrDataDir && !e.inUse || target == ErrDataDirInUse && e.inUse
}

// savedState is state.json.
type savedState struct {
	Version          string            `json:"version"`
	HTTPPort         int               `json:"http_port"`
	PGPort           int               `json:"pg_port"`
	PooledPort       int               `json:"pooled_port,omitempty"`
	Database         string            `json:"database"`
	WorkspaceID      string            `json:"workspace_id"`
	AccountID        string            `json:"account_id"`
	SigningKey       string            `json:"signing_key"` // PKCS#1 PEM
	KeyID            string            `json:"key_id"`
	CACert           string            `json:"ca_cert"`
	CAKey            string            `json:"ca_key"`
	ServicePrincipal ServicePrincipal  `json:"service_principal"`
	UserEmail        string            `json:"user"`
	Clients          map[string]string `json:"clients"`
	Users            []string          `json:"users"`
	Passwords        map[string]string `json:"passwords,omitempty"`
	Roles            []string          `json:"roles,omitempty"`
	RoleIDs          map[string]string `json:"role_ids,omitempty"`
	RoleTypes        map[string]string `json:"role_types,omitempty"`
	PGPasswords      []string          `json:"pg_password_roles,omitempty"`
	Branches         []savedBranch     `json:"branches,omitempty"`
	// Revocations, kept with the signing key whose tokens they refuse: the ids of
	// revoked tokens and credentials (Revoke), and RevokeAllCredentials's time.
	Revoked     []string  `json:"revoked,omitempty"`
	RevokeCreds time.Time `json:"revoke_creds,omitzero"`
	// A person's logins: the refresh tokens not spent yet, one a family (a spent
	// token names its family itself, so a reuse after a restart is still caught;
	// "used" entries are spent tokens as an older directory kept them), and the
	// families revoked (whose tokens are not kept: every one of them is refused).
	RefreshTokens   map[string]savedRefresh `json:"refresh_tokens,omitempty"`
	RevokedFamilies []string                `json:"revoked_families,omitempty"`
}

// savedRefresh is a refresh token the workspace issued.
type savedRefresh struct {
	Family   string `json:"family"`
	ClientID string `json:"client_id"`
	Subject  string `json:"subject"`
	Scope    string `json:"scope"`
	Used     bool   `json:"used,omitempty"`
}

// savedBranch is a branch made through the API, with its own PostgreSQL in
// branches/<id>.
type savedBranch struct {
	Name      string    `json:"name"`
	Source    string    `json:"source"`
	Database  string    `json:"database"`
	Endpoint  string    `json:"endpoint"`
	Protected bool      `json:"protected,omitempty"`
	Created   time.Time `json:"created"`
	Ready     time.Time `json:"ready"`
	Expires   time.Time `json:"expires,omitempty"`
}

// dataDir is an open, locked data directory.
type dataDir struct {
	path  string
	lock  *flock.Flock
	saved []byte // state.json as last written
	done  chan struct{}
	ready bool // the server started: its state is whole, and may be saved

	madeLock bool // the lock file did not exist before this emulator locked it
	claimed  bool // the directory is used: the lock file names this process
	// releaseDir lets the lock on the directory itself go (lockDir).
	releaseDir func()

	fresh bool        // absent or empty when opened: all it holds is this emulator's
	made  bool        // absent when opened: this emulator made it
	mode  os.FileMode // its mode when opened (PostgreSQL's user may be given o+x)
}

// undo takes a fresh directory back to what it was (absent, or empty with its
// mode) when the server that made it did not start: half made, with PostgreSQL's
// data and no state, it would be refused as damaged at every start after.
func (d *dataDir) undo() error {
	if !d.fresh || d.ready {
		return nil
	}
	if d.made {
		return os.RemoveAll(d.path)
	}
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(d.path, e.Name())))
	}
	errs = append(errs, os.Chmod(d.path, d.mode))
	return errors.Join(errs...)
}

func (d *dataDir) file(name string) string { return filepath.Join(d.path, name) }

// openDataDir checks and locks dir. A missing or empty dir is made a data
// directory (state nil); one of another version, damaged, or held by another
// emulator is refused and left as it was.
func openDataDir(dir string) (*dataDir, *savedState, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	d := &dataDir{path: abs, done: make(chan struct{})}
	refuse := func(format string, args ...any) error {
		return &dataDirError{dir: abs, msg: fmt.Sprintf(format, args...) + "; it was left as it was"}
	}
	fi, err := os.Lstat(abs)
	fresh := false
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, nil, fmt.Errorf("lakebasetest: making data directory %s: %w", abs, err)
		}
		fresh, d.made = true, true
	case err != nil:
		return nil, nil, err
	case !fi.IsDir():
		return nil, nil, refuse("is not a directory (a symbolic link is not followed)")
	default:
		if !ownedByMe(fi) {
			return nil, nil, refuse("belongs to another user")
		}
		if writableByOthers(fi) {
			// Another user could swap its files for links between the checks
			// below and the writes that follow them.
			return nil, nil, refuse("may be written by other users (mode %v): chmod go-w it, or give another directory", fi.Mode().Perm())
		}
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, nil, err
		}
		fresh = len(entries) == 0
		d.mode = fi.Mode().Perm()
	}
	d.fresh = fresh
	if !fresh {
		v, err := readPrivateFile(d.file("VERSION"), false)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, refuse("holds files but no VERSION: it is not a lakebase-local data directory (give an empty or new directory)")
		}
		if err != nil {
			return nil, nil, refuse("VERSION: %v", err)
		}
		if got := strings.TrimSpace(string(v)); got != DataDirVersion {
			return nil, nil, refuse("is of another version (%q; this emulator reads %q): use the lakebase-local that made it, or another directory", firstLine(got), DataDirVersion)
		}
	}
	if err := d.takeLock(); err != nil {
		d.unlock()
		return nil, nil, err
	}
	if fresh {
		if err := os.WriteFile(d.file("VERSION"), []byte(DataDirVersion+"\n"), 0o644); err != nil {
			d.unlock()
			return nil, nil, err
		}
		if err := d.claim(); err != nil {
			d.unlock()
			return nil, nil, err
		}
		return d, nil, nil
	}
	st, err := d.load()
	var other otherPostgres
	switch {
	case errors.As(err, &other):
		d.unlock()
		return nil, nil, refuse("%s", other.msg)
	case err != nil:
		d.unlock()
		return nil, nil, refuse("is damaged: %v (move it away to start afresh)", err)
	}
	return d, st, nil
}

// otherPostgres is load's error for data of another PostgreSQL major version:
// not damaged, only not for the PostgreSQL found.
type otherPostgres struct{ msg string }

func (e otherPostgres) Error() string { return e.msg }

// takeLock holds the directory's lock, or says which process does. A lock whose
// process died is free again (the kernel drops it): it is taken over. The lock
// file names its holder only once the directory is accepted (claim): a refused
// directory keeps the lock file it had, or none.
func (d *dataDir) takeLock() error {
	path := d.file("lock")
	// The directory itself is locked first: its lock holds even when the lock
	// file was removed under a running emulator (as a stale pid file would be).
	release, ok, err := lockDir(d.path)
	if err != nil {
		return fmt.Errorf("lakebasetest: locking data directory %s: %w", d.path, err)
	}
	d.releaseDir = release
	if ok {
		fi, err := os.Lstat(path)
		if err == nil && !fi.Mode().IsRegular() {
			return &dataDirError{dir: d.path, msg: "its lock is not a regular file; it was left as it was"}
		}
		d.madeLock = errors.Is(err, os.ErrNotExist)
		d.lock = flock.New(path, flock.SetPermissions(0o600))
		if ok, err = d.lock.TryLock(); err != nil {
			return fmt.Errorf("lakebasetest: locking data directory %s: %w", d.path, err)
		}
	}
	if !ok {
		holder := "another process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				holder = "process " + strconv.Itoa(pid)
				if pid == os.Getpid() {
					holder = "another emulator of this process (" + strconv.Itoa(pid) + ")"
				}
			}
		}
		return &dataDirError{dir: d.path, inUse: true,
			msg: "is in use by " + holder + ": stop that lakebase-local first, or give another -data-dir"}
	}
	return nil
}

// claim writes this process's id to the lock file, for the message another
// emulator gives (the same inode: the lock holds), once the directory is used.
func (d *dataDir) claim() error {
	d.claimed = true
	return os.WriteFile(d.file("lock"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// unlock lets the directory go; a lock file this emulator made for a directory it
// then refused is removed, leaving the directory as it was.
func (d *dataDir) unlock() {
	if d.lock != nil {
		if d.madeLock && !d.claimed && d.lock.Locked() {
			os.Remove(d.file("lock"))
		}
		d.lock.Unlock()
		d.lock.Close()
	}
	if d.releaseDir != nil {
		d.releaseDir()
	}
}

// load reads state.json and checks that PostgreSQL's data is there.
func (d *dataDir) load() (*savedState, error) {
	b, err := readPrivateFile(d.file("state.json"), true)
	if err != nil {
		return nil, fmt.Errorf("state.json: %w", err)
	}
	var st savedState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, errors.New("state.json is not a valid state document")
	}
	switch {
	case st.Version != DataDirVersion:
		return nil, errors.New("state.json is of another version")
	case st.SigningKey == "" || st.CACert == "" || st.CAKey == "" || st.ServicePrincipal.ClientID == "" || st.HTTPPort <= 0 || st.PGPort <= 0 || st.Database == "":
		return nil, errors.New("state.json lacks a field it must have")
	case !pgcluster.Initialized(d.file("postgres")):
		return nil, errors.New("postgres/ holds no PostgreSQL data directory")
	}
	// What the emulator starts PostgreSQL in, writes to or removes must be the
	// directory's own: a symbolic link is refused, never followed.
	if err := d.ownTree("postgres", true); err != nil {
		return nil, err
	}
	// Data of another major version would not start (after an upgrade of the
	// machine's PostgreSQL): refused before anything is written.
	have, err := pgcluster.DataVersion(d.file("postgres"))
	if err != nil {
		return nil, fmt.Errorf("postgres/: %w", err)
	}
	if run, bin, err := pgcluster.ServerVersion(); err == nil && run != have {
		return nil, otherPostgres{fmt.Sprintf("holds the data of PostgreSQL %d (postgres/), and the PostgreSQL found (%s) is %d: put PostgreSQL %d's binaries first on PATH, or upgrade the data with pg_upgrade", have, bin, run, have)}
	}
	if err := d.ownEntry("branches", true, false); err != nil {
		return nil, err
	}
	for _, sb := range st.Branches {
		if id := sb.Name[strings.LastIndex(sb.Name, "/")+1:]; resourceID.MatchString(id) {
			if err := d.ownTree("branches/"+id, false); err != nil {
				return nil, err
			}
		}
	}
	d.saved = b
	return &st, nil
}

// ownTree checks the root of a PostgreSQL kept in the data directory (postgres,
// branches/<id>): it, its data and its log are what they seem, no symbolic link.
func (d *dataDir) ownTree(root string, required bool) error {
	if err := d.ownEntry(root, true, required); err != nil {
		return err
	}
	if err := d.ownEntry(root+"/data", true, false); err != nil {
		return err
	}
	return d.ownEntry(root+"/postgres.log", false, false)
}

// ownEntry checks that name (slash-separated, in the data directory) is a
// directory (dir) or a regular file, not a symbolic link; absent is fine unless
// required.
func (d *dataDir) ownEntry(name string, dir, required bool) error {
	fi, err := os.Lstat(d.file(filepath.FromSlash(name)))
	switch {
	case errors.Is(err, os.ErrNotExist) && !required:
		return nil
	case err != nil:
		return err
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link (one is not followed)", name)
	case dir && !fi.IsDir():
		return fmt.Errorf("%s is not a directory", name)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", name)
	}
	return nil
}

// readPrivateFile reads a regular file (never through a symbolic link); private:
// it must be this user's and closed to group and others.
func readPrivateFile(path string, private bool) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if private && !ownedPrivately(fi) {
		return nil, fmt.Errorf("must be this user's with mode 0600 (it is %v)", fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// save writes state.json (0600, through a temporary file and a rename) when it
// changed since it was last written.
func (d *dataDir) save(st *savedState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if bytes.Equal(b, d.saved) {
		return nil
	}
	tmp := d.file("state.json.tmp")
	os.Remove(tmp)
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.file("state.json")); err != nil {
		return err
	}
	d.saved = b
	return nil
}

// state is what the server keeps in its data directory now.
func (s *Server) state() *savedState {
	caKey, _ := s.ca.KeyPEM()
	st := &savedState{
		Version:          DataDirVersion,
		HTTPPort:         s.httpLn.Addr().(*net.TCPAddr).Port,
		PGPort:           s.Port,
		PooledPort:       s.PooledPort,
		Database:         s.Database,
		WorkspaceID:      s.WorkspaceID,
		AccountID:        s.AccountID,
		SigningKey:       string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.key)})),
		KeyID:            s.keyID,
		CACert:           string(s.ca.CertPEM),
		CAKey:            string(caKey),
		ServicePrincipal: s.ServicePrincipal,
		UserEmail:        s.User.Email,
		Clients:          map[string]string{},
		Passwords:        map[string]string{},
		RoleIDs:          map[string]string{},
		RoleTypes:        map[string]string{},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.clients {
		st.Clients[k] = v
	}
	for u := range s.users {
		st.Users = append(st.Users, u)
	}
	for k, v := range s.passwords {
		st.Passwords[k] = v
	}
	for r := range s.roles {
		st.Roles = append(st.Roles, r)
	}
	for k, v := range s.roleIDs {
		st.RoleIDs[k] = v
	}
	for k, v := range s.roleTypes {
		st.RoleTypes[k] = v
	}
	for r, ok := range s.pgPasswords {
		if ok {
			st.PGPasswords = append(st.PGPasswords, r)
		}
	}
	for _, b := range s.branchesMap {
		if b.state == "READY" && b.pg != nil && s.branchDir(b) != "" {
			st.Branches = append(st.Branches, savedBranch{Name: b.name, Source: b.source, Database: b.database, Endpoint: b.endpoint,
				Protected: b.protected, Created: b.created, Ready: b.ready, Expires: b.expires})
		}
	}
	for _, sb := range s.unstarted {
		st.Branches = append(st.Branches, sb)
	}
	for id := range s.revoked {
		st.Revoked = append(st.Revoked, id)
	}
	sort.Strings(st.Revoked)
	st.RevokeCreds = s.revokeCreds
	for tok, rt := range s.refresh {
		if s.families[rt.family] {
			continue
		}
		if st.RefreshTokens == nil {
			st.RefreshTokens = map[string]savedRefresh{}
		}
		st.RefreshTokens[tok] = savedRefresh{Family: rt.family, ClientID: rt.clientID, Subject: rt.subject, Scope: rt.scope}
	}
	for tok, f := range s.spent {
		if s.families[f] {
			continue
		}
		if st.RefreshTokens == nil {
			st.RefreshTokens = map[string]savedRefresh{}
		}
		st.RefreshTokens[tok] = savedRefresh{Family: f, Used: true}
	}
	for f := range s.families {
		st.RevokedFamilies = append(st.RevokedFamilies, f)
	}
	sort.Strings(st.RevokedFamilies)
	sort.Slice(st.Branches, func(i, j int) bool { return st.Branches[i].Name < st.Branches[j].Name })
	sort.Strings(st.Users)
	sort.Strings(st.Roles)
	sort.Strings(st.PGPasswords)
	return st
}

// saveState writes the state to the data directory, if there is one.
func (s *Server) saveState() error {
	if s.data == nil || !s.data.ready {
		return nil // a server that did not start leaves the directory as it found it
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	return s.data.save(s.state())
}

// keepSaving saves the state every second until Close, so a killed emulator
// loses at most a second of identities and roles.
func (s *Server) keepSaving() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.data.done:
			return
		case <-t.C:
			if err := s.saveState(); err != nil {
				s.logf("data directory: saving: %v", err)
			}
		}
	}
}

// restore takes the identities, keys and roles of st.
func (s *Server) restore(st *savedState) error {
	kb, _ := pem.Decode([]byte(st.SigningKey))
	if kb == nil {
		return errors.New("the signing key is not PEM")
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("the signing key: %w", err)
	}
	ca, err := testca.Load([]byte(st.CACert), []byte(st.CAKey))
	if err != nil {
		return err
	}
	s.key, s.keyID, s.ca = key, st.KeyID, ca
	s.WorkspaceID, s.AccountID = st.WorkspaceID, st.AccountID
	s.ServicePrincipal = st.ServicePrincipal
	if st.UserEmail != "" {
		s.User = User{Email: st.UserEmail}
	}
	s.clients = map[string]string{}
	for k, v := range st.Clients {
		s.clients[k] = v
	}
	s.users = map[string]bool{}
	for _, u := range st.Users {
		s.users[u] = true
	}
	for k, v := range st.Passwords {
		s.passwords[k] = v
	}
	for _, r := range st.Roles {
		s.roles[r] = true
	}
	for k, v := range st.RoleIDs {
		s.roleIDs[k] = v
	}
	for k, v := range st.RoleTypes {
		s.roleTypes[k] = v
	}
	for _, r := range st.PGPasswords {
		s.pgPasswords[r] = true
	}
	for _, id := range st.Revoked {
		s.revoked[id] = true
	}
	s.revokeCreds = st.RevokeCreds
	for tok, rt := range st.RefreshTokens {
		s.issued = append(s.issued, tok) // IssuedSecrets names it, as before the restart
		if rt.Used {
			s.spent[tok] = rt.Family
			continue
		}
		s.refresh[tok] = &refreshToken{family: rt.Family, clientID: rt.ClientID, subject: rt.Subject, scope: rt.Scope}
	}
	for _, f := range st.RevokedFamilies {
		s.families[f] = true
	}
	return nil
}

// restoreBranches starts the PostgreSQL of every branch st kept (one past its
// expiry is removed instead). A branch whose PostgreSQL does not start is not
// served, logged, and kept in the state with its data for the next start (its id
// cannot be made again meanwhile).
func (s *Server) restoreBranches(ctx context.Context, st *savedState) int {
	n := 0
	project := strings.Join(strings.Split(s.Endpoint, "/")[:2], "/") + "/branches/"
	for _, sb := range st.Branches {
		id := strings.TrimPrefix(sb.Name, project)
		if !strings.HasPrefix(sb.Name, project) || !resourceID.MatchString(id) || sb.Endpoint != sb.Name+"/endpoints/primary" {
			s.logf("data directory: branch %q is not one this emulator makes; left out", sb.Name)
			continue
		}
		b := &branch{name: sb.Name, source: sb.Source, database: sb.Database, endpoint: sb.Endpoint, state: "READY",
			protected: sb.Protected, created: sb.Created, ready: sb.Ready, expires: sb.Expires}
		if !b.expires.IsZero() && time.Now().After(b.expires) {
			os.RemoveAll(s.branchDir(b))
			continue
		}
		if !pgcluster.Initialized(s.branchDir(b)) {
			s.logf("data directory: branch %s has no data; left out", sb.Name)
			continue
		}
		pg, err := s.startBranchCluster(ctx, b, false)
		if err != nil {
			// Kept in the state (and its id taken) for the next start: its data is
			// there, and a start that failed once (out of time, another
			// PostgreSQL version) may not fail the next time.
			s.logf("data directory: branch %s: %v; not served, kept for the next start", sb.Name, err)
			s.mu.Lock()
			s.unstarted[sb.Name] = sb
			s.mu.Unlock()
			continue
		}
		b.pg = pg
		s.mu.Lock()
		s.branchesMap[b.name] = b
		s.mu.Unlock()
		n++
	}
	return n
}
