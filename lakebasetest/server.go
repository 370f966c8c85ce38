// Package lakebasetest runs a local Lakebase emulator for tests, in the spirit of
// net/http/httptest: a Databricks workspace (OIDC server, credential APIs, instance
// and endpoint lookup, SCIM Me) plus a Postgres front door that, like Lakebase,
// demands TLS and a database credential as the password, and relays each session to a
// real, ephemeral PostgreSQL.
//
//	srv := lakebasetest.Start(t)                       // stops at the end of the test
//	db, _ := sql.Open("lakebase", srv.OAuthClientDSN())
//
// Knobs on the Server shorten lifetimes, add latency and errors, cut the IdP off,
// revoke tokens, drop sessions and count calls per endpoint.
package lakebasetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/pgcluster"
	"github.com/lakebase-go/lakebase/internal/tempdir"
	"github.com/lakebase-go/lakebase/internal/testca"
)

// Endpoint names, for the per-endpoint knobs and counters.
const (
	EPDiscovery       = "discovery"
	EPAuthorize       = "authorize"
	EPToken           = "token"
	EPJWKS            = "jwks"
	EPCredAutoscaling = "credentials.autoscaling"
	EPCredProvisioned = "credentials.provisioned"
	EPInstances       = "instances"
	EPEndpoints       = "endpoints"
	EPSCIMMe          = "scim.me"
	EPEntraToken      = "entra.token"       // the emulated Microsoft Entra ID token endpoint
	EPIMDS            = "imds"              // the emulated Azure instance metadata endpoint
	EPBranches        = "branches"          // the branches API (create, get, delete, operations)
	EPRoles           = "roles"             // the roles APIs (Autoscaling and Provisioned)
	EPThrottled       = "throttled"         // requests answered 429 (SetThrottle)
	EPSessionEnded    = "session.ended"     // sessions the front door ended (IdleSessionTimeout, MaxSessionLifetime); also per reason, session.ended:idle
	EPLogin           = "frontdoor.login"   // a login accepted by the front door
	EPLoginRefused    = "frontdoor.refused" // a login refused by the front door
	EPPooledLogin     = "frontdoor.pooled"  // a login the pooled host sent to the pooler
	EPNoRole          = "frontdoor.norole"  // a login refused because the identity has no Postgres role
	EPNotReady        = "frontdoor.57p03"   // a login answered 57P03: waking, or disabled
	EPHostMetadata    = "host.metadata"     // GET /.well-known/databricks-config
	EPLoginHost       = "login.host"        // the login host (LoginHost), where a host-agnostic login starts
	EPNoWorkspaceID   = "workspace.refused" // workspace API calls a unified host refused (no or another X-Databricks-Workspace-Id)
)

// Values of Options.PoolerAuth.
const (
	PoolerAuthAny      = "any"      // the pooled host takes OAuth credentials and native passwords
	PoolerAuthPassword = "password" // the pooled host takes native Postgres passwords only
)

// ErrNoPgBouncer is returned by NewServer with Options.Pooler when no pgbouncer
// program is installed (on Debian: apt-get install -y pgbouncer).
var ErrNoPgBouncer = pgcluster.ErrNoPgBouncer

// ErrNoPostgres is returned by NewServer when no PostgreSQL server binaries are
// installed (on Debian: apt-get install -y postgresql).
var ErrNoPostgres = pgcluster.ErrNoBinaries

// ServicePrincipal is an OAuth client of the emulated workspace.
type ServicePrincipal struct {
	ClientID     string // the application id; also its Postgres role
	ClientSecret string
}

// String hides the secret.
func (p ServicePrincipal) String() string { return "lakebasetest.ServicePrincipal{" + p.ClientID + "}" }

// Format hides the secret for every fmt verb.
func (p ServicePrincipal) Format(f fmt.State, _ rune) { fmt.Fprint(f, p.String()) }

// User is a person of the emulated workspace.
type User struct {
	Email string // SCIM userName; also the Postgres role
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// AutoApprove makes the authorize endpoint redirect at once, as if the user had
	// clicked Approve, instead of showing the consent page.
	AutoApprove bool
	// TokenLifetime is the lifetime of workspace access tokens (default 1h).
	TokenLifetime time.Duration
	// CredentialLifetime caps the lifetime of database credentials (default: the
	// requested ttl, 1h at most).
	CredentialLifetime time.Duration
	// NoRefreshRotation makes refresh tokens reusable instead of single-use.
	NoRefreshRotation bool
	// NoReuseDetection stops a reused rotated refresh token from revoking its family.
	NoReuseDetection bool
	// AutoCreateRoles creates a Postgres role on an identity's first login instead of
	// refusing it, as Lakebase does, until a role exists.
	AutoCreateRoles bool
	// Database is the database created for the identities (default databricks_postgres).
	Database string
	// Logf, if set, receives one line per notable event.
	Logf func(format string, args ...any)
	// InvalidTokenStatus is the HTTP status the workspace APIs answer an expired,
	// revoked or unknown workspace token with: 403 (the default, as Databricks mostly
	// answers: "Invalid access token") or 401.
	InvalidTokenStatus int
	// ScaleToZero suspends the Autoscaling endpoint after this long without a session
	// (0: never): the API then reports current_state IDLE, and a connection starts a
	// wake of WakeDelay (default 1s) during which the front door answers SQLSTATE
	// 57P03 "the database system is starting up"; then the endpoint is ACTIVE.
	ScaleToZero time.Duration
	WakeDelay   time.Duration
	// PageSize is how many items list calls (instances, projects, branches,
	// endpoints) answer per page, with next_page_token (default DefaultPageSize).
	PageSize int
	// DecoyProjects adds this many Autoscaling projects (each with a branch and an
	// endpoint on hosts that do not exist), listed before the real one, and as many
	// Provisioned instances: a large workspace, to exercise pagination.
	DecoyProjects int
	// NewBranchLoginDelay refuses logins (28P01) to a new branch for this long from
	// its first login attempt, as Lakebase may right after a branch is created.
	NewBranchLoginDelay time.Duration
	// IdleSessionTimeout ends a session idle between transactions this long, and
	// MaxSessionLifetime a session this old at its next idle moment, as Lakebase does
	// (24 hours idle; sessions older than 3 days may be closed): FATAL 57P01, then the
	// socket closes. 0: never.
	IdleSessionTimeout, MaxSessionLifetime time.Duration
	// MaxConnections limits the sessions the front door relays at once, as a
	// compute size does (0.5 CU: 104, ..., at most 4,000); beyond it a login is
	// answered 53300 "sorry, too many clients already", as PostgreSQL does. 0: no
	// limit.
	MaxConnections int
	// Pooler gives the Autoscaling endpoint a pooled host, as Lakebase's are: a real
	// PgBouncer (the pgbouncer program, 1.18 or later) in transaction mode behind
	// its own TLS listener (PooledPort) with the same credential checks as the
	// direct host, reported as status.hosts.read_write_pooled_host ("localhost:<PooledPort>")
	// and read_only_pooled_host ("127.0.0.1:<PooledPort>": sessions on the hot
	// standby, as ReadOnlyHost's).
	// Branch endpoints and the Provisioned instance have none.
	Pooler bool
	// PoolerAuth is what the pooled host accepts: PoolerAuthAny (the default: OAuth
	// credentials and native passwords) or PoolerAuthPassword (native Postgres
	// passwords only, checked by PgBouncer itself: an OAuth credential is refused
	// with PgBouncer's own "password authentication failed"). The service's
	// documents disagree on which is true.
	PoolerAuth string
	// PoolerPoolSize is the pooler's server sessions per user and database (default:
	// nine tenths of MaxConnections when it is set, as Lakebase sizes it, else 10).
	PoolerPoolSize int
	// UnifiedHost makes the workspace a unified host, as Databricks is moving
	// workspaces to: its metadata (/.well-known/databricks-config) says
	// UNIFIED_HOST, OIDC lives at <URL>/oidc/accounts/<AccountID> (and not at
	// /oidc), and workspace API calls without X-Databricks-Workspace-Id: <WorkspaceID>
	// (or with another id) are refused with 400.
	UnifiedHost bool
	// NoProvisioned makes a workspace with no Lakebase Provisioned instance (only the
	// Autoscaling project), as new workspaces are.
	NoProvisioned bool
	// CredentialExpiryFormat is how credential answers give their expiry: one of the
	// Expiry* constants (default ExpiryRFC3339Nano).
	CredentialExpiryFormat string
	// DataDir keeps the emulator's state in a directory, so that a development
	// database survives a restart and a connection string written once keeps
	// working: PostgreSQL's data, the CA and the keys, the identities and their
	// secrets, the refresh tokens issued to people, the roles, the branches made through the API (each with its own
	// PostgreSQL), and the ports (used again unless HTTPPort, PGPort or PooledPort
	// say otherwise). A missing or empty directory is made one. A
	// directory another emulator holds is refused (ErrDataDirInUse), as is one of
	// another version or a damaged one (ErrDataDir), which is left as it was; so is
	// one other users may write to, or one where PostgreSQL's data, its log or the
	// branches are a symbolic link (never followed). A new directory whose server
	// does not start is taken back to what it was (absent, or empty).
	// Close keeps the directory. "" (the default): everything is temporary.
	DataDir string
	// HTTPPort, PGPort and PooledPort fix the loopback ports of the workspace, the
	// Postgres front door and the pooled host (0: a free port, or with DataDir the
	// one used last time).
	HTTPPort, PGPort, PooledPort int
	// HTTPOnly starts only the workspace (OIDC and REST APIs): no PostgreSQL and no
	// front door, so it starts in milliseconds on a machine without PostgreSQL. Tests
	// of token work, login pages and callbacks use it; Port is 0 and the database
	// credentials it mints are never checked. CreateRole and the like are no-ops.
	HTTPOnly bool
}

// Server is a running emulator.
type Server struct {
	// URL is the workspace URL, http://127.0.0.1:<port>; use it as DatabricksInstance.
	URL string
	// Host and Port are the Postgres front door's address; Host is the name the
	// instance and endpoint APIs return (and the TLS certificate holds).
	Host string
	Port int
	// PooledPort is the pooled host's port (with Options.Pooler; else 0), and
	// PooledHost and ReadOnlyPooledHost what the endpoint API reports for it.
	PooledPort                     int
	PooledHost, ReadOnlyPooledHost string
	// ReadOnlyHost is the read-only host (read_only_dns, read_only_host) of the
	// instance and endpoint: 127.0.0.1, the same front door. Sessions that arrive
	// without a TLS server name (as connections to an IP address do) go to a hot
	// standby of the endpoint's PostgreSQL (streaming replication, started on the
	// first such session), which refuses writes whatever the session sets, as a
	// replica does; its reads see the primary's commits once replayed (poll
	// pg_last_wal_replay_lsn() against the primary's pg_current_wal_lsn()). With
	// an external server (LAKEBASE_TEST_POSTGRES) there is no standby: its
	// sessions are only started read-only (default_transaction_read_only).
	ReadOnlyHost string
	// CACertPEM is the PEM of the CA that signed the front door's certificate;
	// CAFile is a file holding it, for SSLServerCert or psql's sslrootcert.
	CACertPEM []byte
	CAFile    string
	// Database is the Postgres database the identities can use.
	Database string
	// Endpoint is the Autoscaling endpoint path; Instance the Provisioned instance name.
	Endpoint string
	Instance string
	// WorkspaceID and AccountID are what the host metadata reports.
	WorkspaceID, AccountID string
	// AzureTenant is the tenant of the emulated Entra ID token endpoint,
	// <URL>/<AzureTenant>/oauth2/v2.0/token (use URL as AzureAuthorityHost).
	AzureTenant string
	// ServicePrincipal and User are ready-made identities, with Postgres roles.
	ServicePrincipal ServicePrincipal
	User             User

	opts Options
	pg   *pgcluster.Cluster

	// scale to zero (under mu)
	sessions   int
	lastActive time.Time
	wakeUntil  time.Time
	wakes      int
	suspended  bool
	// restart and failover (under mu): the event under way, and the 57P03 message
	down, downRefusal string

	branchesMap map[string]*branch // branches made through the API, by name
	// unstarted are the data directory's branches whose PostgreSQL did not start
	// at this start: kept in its state for the next, their ids taken.
	unstarted   map[string]savedBranch
	operations  map[string]*lro // long-running operations, by name: they outlive their resources
	ownPG       bool
	dir         string
	data        *dataDir     // Options.DataDir, locked
	reused      []string     // what the data directory gave back
	saveMu      sync.Mutex   // serializes saveState
	eventMu     sync.Mutex   // one compute event at a time
	relayGate   sync.RWMutex // relays begin under RLock; a compute event's start takes Lock
	closeOnce   sync.Once
	closeErr    error
	closing     context.Context // done when Close begins: a compute event's downtime ends
	endClosing  context.CancelFunc
	httpSrv     *http.Server
	httpLn      net.Listener
	fd          *frontDoor
	pfd         *frontDoor // the pooled host (Options.Pooler)
	pooler      *pgcluster.Bouncer
	key         *rsa.PrivateKey
	keyID       string
	ca          *testca.CA
	tlsConf     *tls.Config
	autoApp     atomic.Bool
	clockOffset atomic.Int64      // AdvanceClock
	userAgents  map[string]string // the last User-Agent seen per endpoint
	outage      atomic.Bool
	disabled    atomic.Bool // SetEndpointDisabled
	rotation    atomic.Bool
	reuseDet    atomic.Bool

	mu          sync.Mutex
	tokenTTL    time.Duration
	credTTL     time.Duration
	clients     map[string]string // client id -> secret ("" for public clients)
	users       map[string]bool
	counts      map[string]int64
	latency     map[string]time.Duration
	jitter      map[string]time.Duration
	errRate     map[string]float64
	denied      map[string]bool
	throttles   map[string]*throttle
	failures    map[string]int  // next requests of an endpoint answered 503 (SetFailures)
	revoked     map[string]bool // jti of access tokens and credentials, refresh tokens
	codes       map[string]*authCode
	pending     map[string]*authRequest
	refresh     map[string]*refreshToken // unspent
	spent       map[string]string        // spent refresh token -> family, as an older data directory kept them
	families    map[string]bool          // revoked families
	passwords   map[string]string
	roles       map[string]bool   // the main branch's login roles
	roleIDs     map[string]string // branch|role -> the role id it was made with (roles API)
	roleTypes   map[string]string // role -> identity type given to the roles API
	pgPasswords map[string]bool   // password roles of the roles API: PostgreSQL checks the password
	scopes      map[string]bool   // the scope roles made (claims), by cluster|db|role|user
	revokeCreds time.Time         // credentials issued before this are refused
	issued      []string          // every token, credential and code handed out
	trusted     map[string]trustedIssuer
	msi         string // client id of the managed identity IMDS hands out
}

// NewServer starts an emulator. Close it when done.
func NewServer(opts Options) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if opts.Database == "" {
		opts.Database = "databricks_postgres"
	}
	s := &Server{
		opts:         opts,
		Database:     opts.Database,
		Endpoint:     "projects/lakebase/branches/main/endpoints/primary",
		Instance:     "lakebase-instance",
		Host:         "localhost",
		ReadOnlyHost: "127.0.0.1",
		clients:      map[string]string{"databricks-cli": ""},
		users:        map[string]bool{},
		counts:       map[string]int64{},
		latency:      map[string]time.Duration{},
		jitter:       map[string]time.Duration{},
		errRate:      map[string]float64{},
		revoked:      map[string]bool{},
		codes:        map[string]*authCode{},
		pending:      map[string]*authRequest{},
		refresh:      map[string]*refreshToken{},
		spent:        map[string]string{},
		families:     map[string]bool{},
		passwords:    map[string]string{},
		roles:        map[string]bool{},
		roleIDs:      map[string]string{},
		roleTypes:    map[string]string{},
		pgPasswords:  map[string]bool{},
		scopes:       map[string]bool{},
		trusted:      map[string]trustedIssuer{},
		tokenTTL:     opts.TokenLifetime,
		credTTL:      opts.CredentialLifetime,
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = time.Hour
	}
	s.lastActive = time.Now()
	s.closing, s.endClosing = context.WithCancel(context.Background())
	s.branchesMap = map[string]*branch{}
	s.unstarted = map[string]savedBranch{}
	s.operations = map[string]*lro{}
	s.AzureTenant = "9f4c1a2b-3d5e-4f60-8a7b-1c2d3e4f5a6b"
	s.WorkspaceID, s.AccountID = "1234567890123456", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	s.autoApp.Store(opts.AutoApprove)
	s.rotation.Store(!opts.NoRefreshRotation)
	s.reuseDet.Store(!opts.NoReuseDetection)
	s.ServicePrincipal = ServicePrincipal{ClientID: "6a1e3b2c-0d4f-4e5a-9b8c-7d6e5f4a3b2c", ClientSecret: "dose" + randHex(16)}
	s.User = User{Email: "ada@example.com"}
	s.clients[s.ServicePrincipal.ClientID] = s.ServicePrincipal.ClientSecret
	s.users[s.User.Email] = true

	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Start starts an emulator for a test and closes it when the test ends. It fails the
// test if the emulator cannot start.
func Start(tb testing.TB, opts ...Options) *Server {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := NewServer(o)
	if err != nil {
		tb.Fatalf("lakebasetest: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func (s *Server) start(ctx context.Context) error {
	var (
		err   error
		saved *savedState
	)
	if s.opts.DataDir != "" {
		if s.opts.HTTPOnly {
			return errors.New("lakebasetest: DataDir keeps a database: it cannot be HTTPOnly")
		}
		if s.data, saved, err = openDataDir(s.opts.DataDir); err != nil {
			return err
		}
	}
	if saved != nil {
		if saved.Database != s.Database {
			return &dataDirError{dir: s.data.path, msg: fmt.Sprintf("holds database %q, not %q: give the same Database (-database), or another directory", saved.Database, s.Database)}
		}
		if err := s.restore(saved); err != nil {
			return &dataDirError{dir: s.data.path, msg: "is damaged: " + err.Error() + "; it was left as it was"}
		}
		if err := s.data.claim(); err != nil { // accepted: the lock names this process
			return err
		}
		s.reused = []string{"postgres_data", "ca", "signing_key", "identities", "roles", "ports"}
		for _, p := range []struct {
			opt *int
			was int
		}{{&s.opts.HTTPPort, saved.HTTPPort}, {&s.opts.PGPort, saved.PGPort}, {&s.opts.PooledPort, saved.PooledPort}} {
			if *p.opt == 0 {
				*p.opt = p.was
			}
		}
	} else {
		if s.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return err
		}
		s.keyID = randHex(8)
		if s.ca, err = testca.New("lakebase emulator CA"); err != nil {
			return err
		}
	}
	s.CACertPEM = s.ca.CertPEM
	if s.tlsConf, err = s.ca.TLSConfig("localhost", "127.0.0.1", "::1"); err != nil {
		return err
	}
	tempdir.Sweep("lakebase-emulator-") // those of emulators that were killed
	if s.dir, err = tempdir.Make("lakebase-emulator-"); err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.dir, "ca.crt")
	if s.data != nil {
		s.CAFile = s.data.file("ca.crt")
		os.Remove(s.CAFile)
	}
	if err := os.WriteFile(s.CAFile, s.CACertPEM, 0o644); err != nil {
		return err
	}

	if s.opts.HTTPOnly {
		return s.startHTTP()
	}
	if s.data != nil {
		s.pg, err = pgcluster.StartIn(ctx, s.data.file("postgres"))
	} else {
		s.pg, err = pgcluster.Start(ctx)
	}
	if err != nil {
		return err
	}
	s.ownPG = true
	if saved != nil {
		if s.restoreBranches(ctx, saved) > 0 {
			s.reused = append(s.reused, "branches")
		}
		return s.startListeners(ctx)
	}
	if err := s.pg.CreateDatabase(ctx, s.Database); err != nil {
		return fmt.Errorf("creating database %s: %w", s.Database, err)
	}
	// As PostgreSQL 15 and later have it, whatever the version: only roles granted
	// it create objects in public (a scope role must not).
	if err := s.pg.Exec(ctx, s.Database, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"); err != nil {
		return fmt.Errorf("creating database %s: %w", s.Database, err)
	}
	// databricks_superuser, as Lakebase has it; the ready-made identities are the
	// project's owners: members, and able to manage roles.
	if err := s.pg.Exec(ctx, "", "CREATE ROLE databricks_superuser NOLOGIN CREATEDB CREATEROLE"); err != nil {
		return fmt.Errorf("creating databricks_superuser: %w", err)
	}
	for _, role := range []string{s.ServicePrincipal.ClientID, s.User.Email} {
		if err := s.CreateRole(role); err != nil {
			return err
		}
		if err := s.pg.Exec(ctx, "", fmt.Sprintf("GRANT databricks_superuser TO %[1]s; ALTER ROLE %[1]s CREATEROLE", pgcluster.QuoteIdent(role))); err != nil {
			return err
		}
	}

	return s.startListeners(ctx)
}

// startListeners opens the workspace, the front door and the pooled host, and
// with a data directory saves the state and keeps saving it.
func (s *Server) startListeners(ctx context.Context) error {
	if err := s.startHTTP(); err != nil {
		return err
	}
	var err error
	if s.fd, err = newFrontDoor(s, false, s.opts.PGPort); err != nil {
		return err
	}
	s.Port = s.fd.port()
	if s.opts.Pooler {
		if err := s.startPooler(ctx); err != nil {
			return err
		}
	}
	if s.data != nil {
		s.data.ready = true
		if err := s.saveState(); err != nil {
			return fmt.Errorf("lakebasetest: saving to data directory %s: %w", s.data.path, err)
		}
		go s.keepSaving()
	}
	return nil
}

// startPooler starts the PgBouncer of the pooled host and its listener.
func (s *Server) startPooler(ctx context.Context) error {
	switch s.opts.PoolerAuth {
	case "", PoolerAuthAny, PoolerAuthPassword:
	default:
		return fmt.Errorf("PoolerAuth %q: must be %q or %q", s.opts.PoolerAuth, PoolerAuthAny, PoolerAuthPassword)
	}
	size := s.opts.PoolerPoolSize
	if size <= 0 {
		size = 10
		if s.opts.MaxConnections > 0 {
			size = max(1, s.opts.MaxConnections*9/10)
		}
	}
	var err error
	s.pooler, err = pgcluster.StartBouncer(ctx, pgcluster.BouncerOptions{
		PoolSize: size,
		Password: s.opts.PoolerAuth == PoolerAuthPassword,
		Databases: []pgcluster.BouncerDatabase{
			{Name: s.Database, Cluster: s.pg, DBName: s.Database},
			{Name: readOnlyPoolDB(s.Database), Cluster: s.pg, DBName: s.Database, Standby: true},
		},
	})
	if err != nil {
		return err
	}
	if s.pfd, err = newFrontDoor(s, true, s.opts.PooledPort); err != nil {
		return err
	}
	s.PooledPort = s.pfd.port()
	s.PooledHost = net.JoinHostPort(s.Host, strconv.Itoa(s.PooledPort))
	s.ReadOnlyPooledHost = net.JoinHostPort(s.ReadOnlyHost, strconv.Itoa(s.PooledPort))
	return nil
}

func (s *Server) startHTTP() error {
	var err error
	if s.httpLn, err = listenLoopback(s.opts.HTTPPort, "the workspace (HTTPPort, -port)"); err != nil {
		return err
	}
	s.URL = "http://" + s.httpLn.Addr().String()
	s.httpSrv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go s.httpSrv.Serve(s.httpLn)
	return nil
}

// Close stops the front door (closing every session), the HTTP server and
// PostgreSQL, and removes the emulator's temporary files (with DataDir, it saves
// the state there and keeps the directory). Calls after the first do nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	var errs []error
	s.endClosing() // a compute event under way stops waiting for its downtime
	if s.pfd != nil {
		s.pfd.close()
	}
	if s.fd != nil {
		s.fd.close()
	}
	if s.pooler != nil {
		errs = append(errs, s.pooler.Stop())
	}
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			s.httpSrv.Close()
		}
		cancel()
	}
	s.mu.Lock()
	var branchPGs []*pgcluster.Cluster
	for _, b := range s.branchesMap {
		if b.pg != nil {
			branchPGs = append(branchPGs, b.pg)
		}
	}
	s.mu.Unlock()
	for _, pg := range branchPGs {
		errs = append(errs, pg.Stop())
	}
	if s.data != nil {
		close(s.data.done)
		if err := s.saveState(); err != nil {
			errs = append(errs, fmt.Errorf("lakebasetest: saving to data directory %s: %w", s.data.path, err))
		}
	}
	if s.pg != nil && s.ownPG {
		errs = append(errs, s.pg.Stop())
	}
	if s.data != nil {
		errs = append(errs, s.data.undo()) // a new directory whose server did not start
		s.data.unlock()                    // after PostgreSQL stopped: the next emulator may start it
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// --- identities and roles ---

// AddServicePrincipal registers an OAuth client with a secret and creates its role.
func (s *Server) AddServicePrincipal(clientID, secret string) error {
	s.mu.Lock()
	s.clients[clientID] = secret
	s.mu.Unlock()
	return s.CreateRole(clientID)
}

// AddUser registers a person (an e-mail) and creates their role.
func (s *Server) AddUser(email string) error {
	s.mu.Lock()
	s.users[email] = true
	s.mu.Unlock()
	return s.CreateRole(email)
}

// AddPublicClient registers a public OAuth client (no secret), for OAuthPKCE.
func (s *Server) AddPublicClient(clientID string) {
	s.mu.Lock()
	s.clients[clientID] = ""
	s.mu.Unlock()
}

// CreateRole creates a Postgres role (no password) for an identity, with rights on
// the database, as a Lakebase admin would.
func (s *Server) CreateRole(role string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.pg == nil {
		return nil // HTTPOnly
	}
	if err := s.pg.CreateRole(ctx, role, "", s.Database); err != nil {
		return fmt.Errorf("creating role %q: %w", role, err)
	}
	s.mu.Lock()
	s.roles[role] = true
	s.mu.Unlock()
	return nil
}

// Exec runs SQL as a superuser on the emulator's database, as a Lakebase admin
// would (CREATE ROLE app_readers NOLOGIN; GRANT app_readers TO "<client id>"; ...).
func (s *Server) Exec(sql string) error {
	if s.pg == nil {
		return errors.New("lakebasetest: Exec needs PostgreSQL (the server is HTTPOnly)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.pg.Exec(ctx, s.Database, sql)
}

// Sessions returns how many PostgreSQL sessions (client backends) role has open on
// the emulator's database now: through the pooled host, the pooler's server
// sessions, however many clients share them.
func (s *Server) Sessions(role string) (int, error) {
	if s.pg == nil {
		return 0, errors.New("lakebasetest: Sessions needs PostgreSQL (the server is HTTPOnly)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.pg.CountSessions(ctx, role, s.Database)
}

// DropRole drops an identity's Postgres role (its logins are then refused).
func (s *Server) DropRole(role string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := fmt.Sprintf("REASSIGN OWNED BY %[1]s TO postgres; DROP OWNED BY %[1]s", pgcluster.QuoteIdent(role))
	if err := s.pg.Exec(ctx, s.Database, q); err != nil {
		return err
	}
	if err := s.pg.Exec(ctx, "", "DROP ROLE "+pgcluster.QuoteIdent(role)); err != nil {
		return err
	}
	s.pg.ForgetRole(role)
	s.mu.Lock()
	delete(s.roles, role)
	s.mu.Unlock()
	return nil
}

// AddPasswordRole creates a native Postgres role that logs in with a password.
func (s *Server) AddPasswordRole(role, password string) error {
	if s.pg != nil {
		// The role's Postgres password too: the pooler checks it (PoolerAuthPassword).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.pg.CreateRole(ctx, role, password, s.Database); err != nil {
			return fmt.Errorf("creating role %q: %w", role, err)
		}
	}
	s.mu.Lock()
	s.roles[role] = true
	s.passwords[role] = password
	s.mu.Unlock()
	return nil
}

// --- knobs ---

// UserAgent returns the User-Agent of the last request to endpoint (one of the EP
// constants).
func (s *Server) UserAgent(endpoint string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userAgents[endpoint]
}

// AdvanceClock moves the emulator's clock, which decides whether tokens and
// credentials have expired, d ahead (negative d moves it back): a test sees an
// expiry without waiting for one, whatever the machine's speed.
func (s *Server) AdvanceClock(d time.Duration) { s.clockOffset.Add(int64(d)) }

// now is the emulator's clock.
func (s *Server) now() time.Time { return time.Now().Add(time.Duration(s.clockOffset.Load())) }

// SetAutoApprove switches the consent page off (true) or on.
func (s *Server) SetAutoApprove(on bool) { s.autoApp.Store(on) }

// SetTokenLifetime sets the lifetime of access tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) { s.mu.Lock(); s.tokenTTL = d; s.mu.Unlock() }

// SetCredentialLifetime caps the lifetime of database credentials issued from now on
// (0 = the requested ttl).
func (s *Server) SetCredentialLifetime(d time.Duration) { s.mu.Lock(); s.credTTL = d; s.mu.Unlock() }

// SetRefreshRotation makes refresh tokens single-use (true, the default) or reusable.
func (s *Server) SetRefreshRotation(on bool) { s.rotation.Store(on) }

// SetReuseDetection makes a reused rotated refresh token revoke its family (true, the default).
func (s *Server) SetReuseDetection(on bool) { s.reuseDet.Store(on) }

// SetLatency delays every request to endpoint (one of the EP constants) by d.
func (s *Server) SetLatency(endpoint string, d time.Duration) {
	s.mu.Lock()
	s.latency[endpoint] = d
	s.mu.Unlock()
}

// SetRandomLatency delays every request to endpoint by a random time up to max, on
// top of SetLatency.
func (s *Server) SetRandomLatency(endpoint string, max time.Duration) {
	s.mu.Lock()
	s.jitter[endpoint] = max
	s.mu.Unlock()
}

// SetErrorRate makes a fraction (0..1) of requests to endpoint fail with 503.
func (s *Server) SetErrorRate(endpoint string, rate float64) {
	s.mu.Lock()
	s.errRate[endpoint] = math.Max(0, math.Min(1, rate))
	s.mu.Unlock()
}

// SetPermissionDenied makes endpoint answer every request 403 PERMISSION_DENIED (or
// serve again), as the service answers an identity without the permission: the
// roles API for an identity that may not manage the project, say.
func (s *Server) SetPermissionDenied(endpoint string, on bool) {
	s.mu.Lock()
	if s.denied == nil {
		s.denied = map[string]bool{}
	}
	s.denied[endpoint] = on
	s.mu.Unlock()
}

// SetThrottle makes endpoint answer its next n requests 429 REQUEST_LIMIT_EXCEEDED
// with Retry-After (whole seconds, at least 1), as a rate-limited service does.
// Count(EPThrottled) counts them.
func (s *Server) SetThrottle(endpoint string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	if s.throttles == nil {
		s.throttles = map[string]*throttle{}
	}
	s.throttles[endpoint] = &throttle{left: n, after: max(retryAfter, time.Second)}
	s.mu.Unlock()
}

// SetFailures makes endpoint answer its next n requests 503 TEMPORARILY_UNAVAILABLE
// (without Retry-After), as a service does for a moment; then it serves again. Unlike
// SetErrorRate the failures are exactly the next n.
func (s *Server) SetFailures(endpoint string, n int) {
	s.mu.Lock()
	if s.failures == nil {
		s.failures = map[string]int{}
	}
	s.failures[endpoint] = n
	s.mu.Unlock()
}

type throttle struct {
	left  int
	after time.Duration
}

// SetOutage makes every HTTP endpoint of the workspace answer 503 (true) or recover.
func (s *Server) SetOutage(on bool) { s.outage.Store(on) }

// Revoke revokes a token: an access token, a refresh token (and its family), or a
// database credential.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	if f := s.familyOf(token); f != "" {
		s.families[f] = true
		s.mu.Unlock()
		s.saveRefresh() // on disk when Revoke returns, even if the emulator is killed next
		return
	}
	if c, err := s.parseJWT(token); err == nil {
		s.revoked[c.ID] = true
	}
	s.mu.Unlock()
}

// RevokeAllCredentials refuses every database credential issued until now.
func (s *Server) RevokeAllCredentials() {
	s.mu.Lock()
	s.revokeCreds = time.Now()
	s.mu.Unlock()
}

// IssuedSecrets returns every secret the emulator has handed out: access and refresh
// tokens, database credentials, authorization codes, and the client secrets it knows.
// Tests use it to check that none of them leaks into logs or errors.
func (s *Server) IssuedSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.issued...)
	for _, sec := range s.clients {
		if sec != "" {
			out = append(out, sec)
		}
	}
	for _, pw := range s.passwords {
		out = append(out, pw)
	}
	return out
}

func (s *Server) remember(secret string) {
	s.mu.Lock()
	s.issued = append(s.issued, secret)
	s.mu.Unlock()
}

// DropSessions closes every open Postgres session of the front door.
func (s *Server) DropSessions() {
	s.fd.dropAll()
	if s.pfd != nil {
		s.pfd.dropAll()
	}
}

// Count returns how many requests reached endpoint (one of the EP constants). Token
// requests are also counted per grant, as "token:<grant_type>".
func (s *Server) Count(endpoint string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// Counts returns a copy of all counters.
func (s *Server) Counts() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// ResetCounts sets every counter to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	s.counts = map[string]int64{}
	s.mu.Unlock()
}

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	s.counts[endpoint]++
	s.mu.Unlock()
}

// PostgresPID returns the process id of the PostgreSQL server behind the front door
// (0 for an external server).
func (s *Server) PostgresPID() int {
	if s.pg == nil {
		return 0
	}
	return s.pg.Pid()
}

// DataDir returns the data directory's absolute path (Options.DataDir), or "".
func (s *Server) DataDir() string {
	if s.data == nil {
		return ""
	}
	return s.data.path
}

// Reused names what the data directory gave back at start (postgres_data, ca,
// signing_key, identities, roles, ports, and branches when there were any): nil
// when it was new, or without one.
func (s *Server) Reused() []string { return append([]string(nil), s.reused...) }

// TempDirs returns the temporary directories the emulator made (and Close removes).
func (s *Server) TempDirs() []string {
	out := []string{s.dir}
	if s.pg == nil {
		return out
	}
	if d := s.pg.Dir(); d != "" {
		out = append(out, d, filepath.Dir(s.pg.CAFile)) // the cluster's, and its CA's
	}
	if s.pooler != nil {
		out = append(out, s.pooler.Dir())
	}
	return out
}

// PoolerPID returns the PgBouncer's process id (Options.Pooler), or 0. A restart or
// failover of the compute starts a new PgBouncer (RestartCompute).
func (s *Server) PoolerPID() int {
	if s.pooler == nil {
		return 0
	}
	return s.pooler.Pid()
}

// StopPostgres stops the PostgreSQL server behind the front door; the workspace APIs
// keep answering. It cannot be restarted.
func (s *Server) StopPostgres() error { return s.pg.Stop() }

// --- connection strings ---

// OAuthClientDSN returns an AuthScheme=OAuthClient connection string for the
// ready-made service principal and the Autoscaling endpoint, trusting the emulator's
// CA with verify-full. extra pairs ("Name=Value") are appended and win.
func (s *Server) OAuthClientDSN(extra ...string) string {
	return s.dsn("AuthScheme=OAuthClient", "OAuthClientId="+s.ServicePrincipal.ClientID,
		"OAuthClientSecret="+s.ServicePrincipal.ClientSecret, "Endpoint="+s.Endpoint).with(extra)
}

// OAuthPKCEDSN returns an AuthScheme=OAuthPKCE connection string for the ready-made
// user and the Provisioned instance.
func (s *Server) OAuthPKCEDSN(extra ...string) string {
	return s.dsn("AuthScheme=OAuthPKCE", "Instance="+s.Instance).with(extra)
}

// PasswordDSN returns an AuthScheme=Password connection string for a native role.
func (s *Server) PasswordDSN(role, password string, extra ...string) string {
	return dsnParts{"AuthScheme=Password", "Server=" + s.Host, "Port=" + strconv.Itoa(s.Port),
		"Database=" + s.Database, "User=" + lakebase.QuoteDSNValue(role), "Password=" + lakebase.QuoteDSNValue(password),
		"SSLMode=verify-full", "SSLServerCert=" + lakebase.QuoteDSNValue(s.CAFile)}.with(extra)
}

type dsnParts []string

func (d dsnParts) with(extra []string) string {
	return strings.Join(append(append([]string(nil), d...), extra...), ";")
}

// DatabaseDSN returns a connection string that names only the database (the
// workspace, the Autoscaling endpoint, the port, the database and the TLS trust):
// what a connector built with lakebase.WithTokenSource needs.
func (s *Server) DatabaseDSN(extra ...string) string {
	return s.dsn("Endpoint=" + s.Endpoint).with(extra)
}

func (s *Server) dsn(parts ...string) dsnParts {
	d := dsnParts{"DatabricksInstance=" + s.URL}
	if s.Port != 0 { // HTTPOnly has no front door
		d = append(d, "Port="+strconv.Itoa(s.Port))
	}
	return append(append(d, "Database="+s.Database, "SSLMode=verify-full", "SSLServerCert="+lakebase.QuoteDSNValue(s.CAFile)), parts...)
}

// --- HTTP plumbing ---

// gate applies the outage switch, latency and error rate of endpoint, and counts the
// request. It reports whether the handler should go on.
func (s *Server) gate(endpoint string, w http.ResponseWriter, r *http.Request) bool {
	s.count(endpoint)
	s.mu.Lock()
	if s.userAgents == nil {
		s.userAgents = map[string]string{}
	}
	s.userAgents[endpoint] = r.UserAgent()
	lat, rate := s.latency[endpoint], s.errRate[endpoint]
	if j := s.jitter[endpoint]; j > 0 {
		lat += time.Duration(mrand.Int64N(int64(j)))
	}
	denied := s.denied[endpoint]
	th := s.throttles[endpoint]
	fail := s.failures[endpoint] > 0
	if fail {
		s.failures[endpoint]--
	}
	if th != nil && th.left > 0 {
		th.left--
	} else {
		th = nil
	}
	s.mu.Unlock()
	if th != nil {
		s.count(EPThrottled)
		w.Header().Set("Retry-After", strconv.Itoa(int((th.after+time.Second-1)/time.Second)))
		writeAPIError(w, http.StatusTooManyRequests, "REQUEST_LIMIT_EXCEEDED", "Too many requests. Please retry later.")
		return false
	}
	if denied {
		writeAPIError(w, http.StatusForbidden, "PERMISSION_DENIED", "The caller does not have permission for this call.")
		return false
	}
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-r.Context().Done():
			return false
		}
	}
	if fail || s.outage.Load() || (rate > 0 && mrand.Float64() < rate) {
		writeAPIError(w, http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE", "the service is temporarily unavailable")
		return false
	}
	return true
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
