package lakebase_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// secretRecorder is an HTTP server that answers like a workspace that knows nothing
// (its discovery names its own token endpoint, everything else is 404) and keeps
// every request whole (headers and body), to look for secrets in them.
type secretRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newSecretRecorder(t *testing.T) *secretRecorder {
	r := &secretRecorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var b strings.Builder
		b.WriteString(req.Method + " " + req.URL.String() + "\n")
		req.Header.Write(&b)
		b.Write(body)
		r.mu.Lock()
		r.seen = append(r.seen, b.String())
		r.mu.Unlock()
		if strings.HasSuffix(req.URL.Path, "/.well-known/oauth-authorization-server") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"issuer":"`+r.URL+`/oidc","authorization_endpoint":"`+r.URL+`/oidc/v1/authorize","token_endpoint":"`+r.URL+`/oidc/v1/token"}`)
			return
		}
		http.NotFound(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// holding reports the requests that carry secret in any form a client sends it:
// as is, URL-encoded, or in an HTTP Basic header with client id.
func (r *secretRecorder) holding(secret, clientID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	forms := []string{secret, url.QueryEscape(secret),
		base64.StdEncoding.EncodeToString([]byte(clientID + ":" + secret)),
		base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(secret)))}
	var out []string
	for _, s := range r.seen {
		for _, f := range forms {
			if strings.Contains(s, f) {
				out = append(out, strings.SplitN(s, "\n", 2)[0])
				break
			}
		}
	}
	return out
}

func (r *secretRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// isolateEnv clears the variables a connection string may be filled from and
// points DATABRICKS_CONFIG_FILE at file.
func isolateEnv(t *testing.T, file string) {
	for _, v := range []string{"DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_PROFILE",
		"DATABRICKS_TOKEN", "DATABRICKS_WORKSPACE_ID", "LAKEBASE_ENDPOINT", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGAPPNAME",
		"DATABRICKS_OIDC_TOKEN_FILEPATH", "DATABRICKS_OIDC_TOKEN_ENV", "ARM_TENANT_ID"} {
		t.Setenv(v, "")
	}
	t.Setenv("DATABRICKS_CONFIG_FILE", file)
}

// A ~/.databrickscfg profile's secrets belong to the profile's host. A connection
// string (or DATABRICKS_HOST) that names another workspace must not take them there:
// neither the client secret nor the personal access token of the profile is sent to
// a host the profile does not name. A profile asked for by name is then an error
// naming Profile; with its own host the profile's secret is used as before.
func TestAttack30_AProfilesSecretsNeverGoToAnotherWorkspace(t *testing.T) {
	const (
		secretProfile = "[DEFAULT]\nhost = https://dbc-profile.cloud.databricks.com\nclient_id = profile-sp\nclient_secret = profile-secret-7f3a9\n"
		tokenProfile  = "[DEFAULT]\nhost = https://dbc-profile.cloud.databricks.com\ntoken = dapi-profile-token-7f3a9\n"
		namedProfile  = "[DEFAULT]\nhost = https://dbc-other.cloud.databricks.com\n[prod]\nhost = https://dbc-profile.cloud.databricks.com\nclient_id = profile-sp\nclient_secret = profile-secret-7f3a9\n"
	)
	for _, tc := range []struct {
		name, profile string
		env           map[string]string
		viaEnv        bool // the workspace comes from DATABRICKS_HOST, not the string
		wantErr       bool // a Profile error, before any request
	}{
		{name: "client secret", profile: secretProfile},
		{name: "token", profile: tokenProfile},
		{name: "workspace from DATABRICKS_HOST", profile: tokenProfile, viaEnv: true},
		{name: "named profile", profile: namedProfile, env: map[string]string{"DATABRICKS_CONFIG_PROFILE": "prod"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ini := filepath.Join(t.TempDir(), "databrickscfg")
			if err := os.WriteFile(ini, []byte(tc.profile), 0o600); err != nil {
				t.Fatal(err)
			}
			isolateEnv(t, ini)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			other := newSecretRecorder(t)
			dsn := "DatabricksInstance=" + other.URL + ";Endpoint=projects/p/branches/b/endpoints/e;Timeout=5"
			if tc.viaEnv {
				t.Setenv("DATABRICKS_HOST", other.URL)
				dsn = "Endpoint=projects/p/branches/b/endpoints/e;Timeout=5"
			}
			c, err := lakebase.NewConnector(dsn)
			if tc.wantErr {
				var ce *lakebase.ConfigError
				if !errors.As(err, &ce) || ce.Property != "Profile" {
					t.Fatalf("a named profile of another host: %v", err)
				}
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err = c.Login(ctx)
				cancel()
				c.Close()
			}
			for _, secret := range []string{"profile-secret-7f3a9", "dapi-profile-token-7f3a9"} {
				if got := other.holding(secret, "profile-sp"); len(got) != 0 {
					t.Fatalf("a secret of the profile for dbc-profile went to the workspace %s: %q", other.URL, got)
				}
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Fatalf("the error holds the profile's secret: %v", err)
				}
			}
		})
	}
	// The profile's own host (written another way) still gets the profile's secret.
	own := newSecretRecorder(t)
	ini := filepath.Join(t.TempDir(), "databrickscfg")
	if err := os.WriteFile(ini, []byte("[DEFAULT]\nhost = "+strings.ToUpper(own.URL)+"/\nclient_id = profile-sp\nclient_secret = profile-secret-7f3a9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	isolateEnv(t, ini)
	c, err := lakebase.NewConnector("DatabricksInstance=" + own.URL + ";Endpoint=projects/p/branches/b/endpoints/e;Timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Login(ctx)
	if got := own.holding("profile-secret-7f3a9", "profile-sp"); len(got) == 0 {
		t.Fatalf("the profile's own host never got its client secret (requests: %d): the check drops every profile", own.count())
	}
}

// projectOf is the project id of an endpoint path.
func projectOf(t *testing.T, endpoint string) string {
	t.Helper()
	parts := strings.Split(endpoint, "/")
	if len(parts) < 2 || parts[0] != "projects" {
		t.Fatalf("not an endpoint path: %q", endpoint)
	}
	return parts[1]
}

// onBranch reports whether db's session is on the branch that holds the table
// attack30_marker (made on the branch only).
func onBranch(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var there bool
	if err := db.QueryRow(`SELECT to_regclass('attack30_marker') IS NOT NULL`).Scan(&there); err != nil {
		t.Fatal(err)
	}
	return there
}

// The database a connection string names by Project (and Branch) is the one used,
// whatever else it says: with Server as well, the credential is minted for the
// project's branch and its session is on that branch, not on whatever instance or
// endpoint of the workspace happens to answer on that host.
func TestAttack30_ServerWithProjectUsesTheProjectsBranch(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	project := projectOf(t, e.Endpoint)
	parent := e.OAuthClientDSN("Endpoint=", "Project="+project)
	branchDSN := lakebasetest.Branch(t, parent)
	bdb, bc := newDB(t, branchDSN)
	if _, err := bdb.Exec(`CREATE TABLE attack30_marker (x int)`); err != nil {
		t.Fatal(err)
	}
	bst, err := bc.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	branch := strings.Split(bst.Endpoint, "/")[3]

	db, c := newDB(t, e.OAuthClientDSN("Endpoint=", "Project="+project, "Branch="+branch, "Server="+e.Host))
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Endpoint != bst.Endpoint || st.Instance != "" {
		t.Fatalf("Project=%s;Branch=%s;Server=%s minted for endpoint %q instance %q, not the branch's endpoint %s",
			project, branch, e.Host, st.Endpoint, st.Instance, bst.Endpoint)
	}
	if !onBranch(t, db) {
		t.Fatal("the session is not on the branch the connection string names")
	}
}

// A stored host lookup of a project's default branch (Project without Branch)
// never moves a login to another branch of the project: the store is a file, and
// which branch's database a credential is minted for and used on is the
// workspace's answer, not the file's.
func TestAttack30_AStoredLookupNeverMovesALoginToAnotherBranch(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	project := projectOf(t, e.Endpoint)
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := e.OAuthClientDSN("Endpoint=", "Project="+project, "OAuthSettingsLocation="+store) // verify-full
	branchDSN := lakebasetest.Branch(t, e.OAuthClientDSN("Endpoint=", "Project="+project))
	bdb, bc := newDB(t, branchDSN)
	if _, err := bdb.Exec(`CREATE TABLE attack30_marker (x int)`); err != nil {
		t.Fatal(err)
	}
	bst, err := bc.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	first, _ := newDB(t, dsn)
	if onBranch(t, first) {
		t.Fatal("the default branch holds the marker: the test proves nothing")
	}
	first.Close()
	n := 0
	editStore(t, store, func(doc map[string]any) {
		for _, l := range entries(doc, "lookups") {
			if ep, _ := l["endpoint"].(string); ep != "" {
				l["endpoint"] = bst.Endpoint
				n++
			}
		}
	})
	if n == 0 {
		t.Fatal("the store has no lookup of the project: the test proves nothing")
	}
	db, c := newDB(t, dsn)
	if onBranch(t, db) {
		st, _ := c.Status(context.Background())
		t.Fatalf("after the store's lookup was changed, the login went to the other branch's endpoint %s", st.Endpoint)
	}
}

// With SSLMode=verify-ca, or require with a trusted certificate (which checks the
// chain but not the name), a host read back from the store is never connected to:
// the workspace is asked first, for the endpoint and for the instance. The logs
// (Verbosity=5, a Logfile and a WithLogger handler) and errors of it all hold none
// of the secrets the emulator issued, nor the client secret.
func TestAttack30_AStoredHostWithoutNameCheckGetsNoConnection(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 8}))
	logfile := filepath.Join(t.TempDir(), "lakebase.log")
	var errs []string
	for _, mode := range []string{"SSLMode=verify-ca", "SSLMode=require"} {
		for _, db := range []string{"Endpoint=" + e.Endpoint, "Instance=" + e.Instance} {
			t.Run(mode+" "+strings.SplitN(db, "=", 2)[0], func(t *testing.T) {
				evil := newFakePostgres(t)
				store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
				dsn := e.OAuthClientDSN("Endpoint=", db, mode, "OAuthSettingsLocation="+store, "Verbosity=5", "Logfile="+logfile)
				first, _ := newDB(t, dsn, lakebase.WithLogger(logger))
				if err := first.Ping(); err != nil {
					t.Fatal(err)
				}
				first.Close()
				for _, host := range []string{"localhost", "127.0.0.1"} {
					n := 0
					editStore(t, store, func(doc map[string]any) {
						for _, l := range entries(doc, "lookups") {
							l["host"] = host + ":" + strconv.Itoa(evil.port())
							n++
						}
					})
					if n == 0 {
						t.Fatal("the store has no host lookup: the test proves nothing")
					}
					db, _ := newDB(t, dsn, lakebase.WithLogger(logger))
					if err := db.Ping(); err != nil {
						errs = append(errs, err.Error())
						t.Fatalf("the login did not work after the store was tampered with: %v", err)
					}
					db.Close()
					if conns, pws := evil.got(); conns != 0 || len(pws) != 0 {
						t.Fatalf("the host named by the store got %d connections and %d passwords", conns, len(pws))
					}
				}
			})
		}
	}
	logs, _ := os.ReadFile(logfile)
	all := string(logs) + buf.String() + strings.Join(errs, "\n")
	if !strings.Contains(all, "stored_host") {
		t.Fatal("no log line tells of the replaced store entry: the logs prove nothing")
	}
	for _, s := range append(e.IssuedSecrets(), e.ServicePrincipal.ClientSecret) {
		if strings.Contains(all, s) {
			t.Fatalf("a secret (%d characters) is in the logs or errors", len(s))
		}
	}
}

// A person's token and the credentials minted with it stay with the person's pool:
// a base connector that keeps a settings file never writes them there, and forged
// or expired tokens (an unsigned JWT naming the person, a real one expired) open no
// pool and take nothing over.
func TestAttack30_APersonsTokenNeverReachesTheBaseStore(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	base, err := lakebase.NewConnector(e.OAuthClientDSN("OAuthSettingsLocation=" + store))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if _, err := base.Login(context.Background()); err != nil { // the base's own login is stored
		t.Fatal(err)
	}
	u := lakebase.NewUserPools(base, lakebase.UserPoolOptions{})
	defer u.Close()
	ctx := context.Background()
	tok, err := e.UserToken("carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	db, err := u.DB(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	var who string
	if err := db.QueryRowContext(ctx, `SELECT current_user`).Scan(&who); err != nil || who != "carol@example.com" {
		t.Fatalf("current_user %q: %v", who, err)
	}
	seg := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	exp := time.Now().Add(time.Hour).Unix()
	forged := seg(`{"alg":"none","typ":"JWT"}`) + "." + seg(`{"sub":"carol@example.com","exp":`+strconv.FormatInt(exp, 10)+`}`) + "."
	expired := seg(`{"alg":"RS256","typ":"JWT"}`) + "." + seg(`{"sub":"carol@example.com","exp":1}`) + ".c2ln"
	for name, bad := range map[string]string{"forged": forged, "expired": expired} {
		if _, err := u.DB(ctx, bad); !errors.Is(err, lakebase.ErrUserToken) {
			t.Fatalf("a %s token: %v", name, err)
		}
	}
	if u.Len() != 1 {
		t.Fatalf("%d pools open", u.Len())
	}
	data, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), tok) || strings.Contains(string(data), "carol@example.com") {
		t.Fatal("the base's settings file holds the person's token or name")
	}
	held := 0
	for _, s := range e.IssuedSecrets() {
		if strings.Contains(string(data), s) {
			held++
		}
	}
	if held == 0 {
		t.Fatal("the settings file holds none of the base's secrets: the test proves nothing")
	}
	// The credential minted for Carol is not among the base's stored credentials:
	// every stored credential is of the base's service principal.
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for k, c := range entries(doc, "credentials") {
		if user, _ := c["user"].(string); user != "" && user != e.ServicePrincipal.ClientID {
			t.Fatalf("credential %s of user %q in the base's store", k, user)
		}
	}
}

// Per-user pools log in as each person: a SessionRole of the base connector (a
// role of the base's own identity) is not put on the person's sessions, where it
// would make current_user a shared role and every person's row-level security the
// same, even for a person who is a member of that role.
func TestAttack30_APersonsSessionIsThePersonsEvenWithABaseSessionRole(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	tok, err := e.UserToken("carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`CREATE ROLE attack30_group NOLOGIN`, `GRANT attack30_group TO "carol@example.com"`,
		`GRANT attack30_group TO "` + e.ServicePrincipal.ClientID + `"`} {
		if err := e.Exec(sql); err != nil {
			t.Fatal(err)
		}
	}
	base, err := lakebase.NewConnector(e.OAuthClientDSN("SessionRole=attack30_group"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	u := lakebase.NewUserPools(base, lakebase.UserPoolOptions{})
	defer u.Close()
	ctx := context.Background()
	db, err := u.DB(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	var cur, sess string
	if err := db.QueryRowContext(ctx, `SELECT current_user, session_user`).Scan(&cur, &sess); err != nil {
		t.Fatal(err)
	}
	if cur != "carol@example.com" || sess != "carol@example.com" {
		t.Fatalf("a person's session runs as current_user %q (session_user %q)", cur, sess)
	}
}

// A read-only login stays read-only whatever the settings store says: a stored host
// lookup of a ReadOnly connector edited to name the primary's host (a name the
// certificate proves, in the workspace's cloud) never lets it write. Which of a
// database's hosts serves read-only sessions is the workspace's answer, not the
// file's; the certificate proves a host's name, not its role.
func TestAttack30_AStoredHostNeverTurnsAReadOnlyLoginIntoAWriter(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := e.OAuthClientDSN("ReadOnly=true", "OAuthSettingsLocation="+store) // verify-full
	first, _ := newDB(t, dsn)
	var standby bool
	if err := first.QueryRow(`SELECT pg_is_in_recovery()`).Scan(&standby); err != nil || !standby {
		t.Fatalf("the read-only host is no standby (%v, %v): the test proves nothing", standby, err)
	}
	first.Close()
	n := 0
	editStore(t, store, func(doc map[string]any) {
		for _, l := range entries(doc, "lookups") {
			l["host"] = e.Host // the primary's name
			n++
		}
	})
	if n == 0 {
		t.Fatal("the store has no host lookup: the test proves nothing")
	}
	db, _ := newDB(t, dsn)
	if err := db.QueryRow(`SELECT pg_is_in_recovery()`).Scan(&standby); err != nil {
		t.Fatal(err)
	}
	if !standby {
		t.Fatal("after the store's lookup was edited, the read-only login reached the primary")
	}
	if _, err := db.Exec(`CREATE TABLE attack30_ro_write (x int)`); err == nil {
		t.Fatal("a read-only login wrote on the primary")
	}
}
