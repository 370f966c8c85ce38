package lakebase_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// Behaviours of the real Databricks service that the emulator models (see the
// README's "How the driver talks to Databricks").

// A workspace token revoked (answered 403, as Databricks does) is dropped and
// replaced; no query fails.
func TestRealService_RevokedTokenAnswered403Heals(t *testing.T) {
	needServers(t)
	db, c := newDB(t, emu.OAuthClientDSN())
	db.SetMaxIdleConns(0) // every query logs in anew
	currentUser(t, db)
	tok, err := c.TokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	emu.Revoke(tok.AccessToken)
	c.ForgetCredential() // the next login mints, with the revoked token
	before := emu.Count(lakebasetest.EPToken)
	if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user %q", u)
	}
	if n := emu.Count(lakebasetest.EPToken) - before; n != 1 {
		t.Fatalf("%d token requests to heal, want 1", n)
	}
	if nt, _ := c.TokenSource().Token(); nt.AccessToken == tok.AccessToken {
		t.Fatal("the revoked token is still in use")
	}
}

// The same through a shared settings file: the refused token is dropped from the
// file too, so another process does not pick it up again.
func TestRealService_RevokedTokenDroppedFromTheStore(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	dsn := emu.OAuthClientDSN("OAuthSettingsLocation=" + file)
	_, a := newDB(t, dsn)
	if _, err := a.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, _ := a.TokenSource().Token()
	emu.Revoke(tok.AccessToken)

	// A new process (connector) reads the stored, revoked token; its first mint is
	// refused, and it heals. (ForgetCredential makes it mint instead of using the
	// credential A stored.)
	dbB, b := newDB(t, dsn)
	b.ForgetCredential()
	if u := currentUser(t, dbB); u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user %q", u)
	}
	nb, _ := b.TokenSource().Token()
	if nb.AccessToken == tok.AccessToken {
		t.Fatal("B uses the revoked token")
	}
	data, _ := os.ReadFile(file)
	if strings.Contains(string(data), tok.AccessToken) {
		t.Fatal("the revoked token is still in the settings file")
	}
	// A third reads the replacement, with no token request of its own.
	before := emu.Count(lakebasetest.EPToken)
	_, c3 := newDB(t, dsn)
	if t3, err := c3.TokenSource().Token(); err != nil || t3.AccessToken != nb.AccessToken {
		t.Fatalf("a third connector: %v", err)
	}
	if emu.Count(lakebasetest.EPToken) != before {
		t.Fatal("a third connector fetched a token instead of using the stored replacement")
	}
}

// A 403 that persists with a fresh token is a permission problem, reported as such
// after exactly one retry.
func TestRealService_PersistentForbiddenIsAPermissionError(t *testing.T) {
	e := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	c, err := lakebase.NewConnector(e.OAuthClientDSN("Endpoint=projects/other/branches/main/endpoints/ep"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Login(context.Background())
	if !errors.Is(err, lakebase.ErrCredential) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

// Scale to zero: a connect to a suspended endpoint waits for the wake (57P03 and
// refusals meanwhile) and succeeds within Timeout; too short a Timeout names the
// state.
func TestRealService_ConnectWakesAnIdleEndpoint(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{ScaleToZero: time.Hour, WakeDelay: 4 * time.Second})
	var mu sync.Mutex
	var logs bytes.Buffer
	c, err := lakebase.NewConnector(e.OAuthClientDSN("Timeout=30"), lakebase.WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	e.Suspend()
	start := time.Now()
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatalf("connect during the wake: %v", err)
	}
	if took := time.Since(start); took < 3*time.Second || e.Wakes() != 1 {
		t.Fatalf("connected after %v with %d wakes: the endpoint was not asleep", took, e.Wakes())
	}
	mu.Lock()
	if !strings.Contains(logs.String(), "woke up") {
		t.Errorf("the wake was not logged:\n%s", logs.String())
	}
	mu.Unlock()

	// Too short a wait: a clear error naming the database and its state. An endpoint
	// that takes a minute to wake, so that a Timeout long enough for the token work
	// and the first connects on a loaded machine still ends during the wake.
	db.Close()
	slow := lakebasetest.Start(t, lakebasetest.Options{ScaleToZero: time.Hour, WakeDelay: time.Minute})
	slow.Suspend()
	e = slow
	c2, _ := lakebase.NewConnector(e.OAuthClientDSN("Timeout=8"))
	db2 := lakebase.OpenDB(c2)
	defer db2.Close()
	err = db2.Ping()
	var we *lakebase.WakeError
	if !errors.As(err, &we) || !errors.Is(err, lakebase.ErrNotAwake) || we.State != "IDLE" || !strings.Contains(err.Error(), e.Endpoint) {
		t.Fatalf("short Timeout: %v", err)
	}
}

// A Server=-only configuration (what Databricks Apps give) finds its endpoint on the
// last of many pages.
func TestRealService_ServerOnlyFindsTheEndpointOnTheLastPage(t *testing.T) {
	e := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true, DecoyProjects: 45, PageSize: 4})
	before := e.Count(lakebasetest.EPInstances)
	c, err := lakebase.NewConnector(e.OAuthClientDSN("Endpoint=", "Server="+e.Host))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Instance != e.Instance || st.Host != e.Host {
		t.Fatalf("resolved %q on %q", st.Instance, st.Host)
	}
	// The instance is the 46th: 12 pages of 4.
	if n := e.Count(lakebasetest.EPInstances) - before; n != 12 {
		t.Fatalf("%d listing calls, want 12 pages", n)
	}
	// The answer is remembered for the connector's life.
	before = e.Count(lakebasetest.EPInstances)
	c.ForgetCredential()
	if _, err := c.Login(context.Background()); err != nil || e.Count(lakebasetest.EPInstances) != before {
		t.Fatalf("listed again (%v)", err)
	}

	// A workspace with only Autoscaling: the endpoint is found after every project's
	// pages of branches and endpoints.
	e2 := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true, DecoyProjects: 30, PageSize: 4, NoProvisioned: true})
	c2, err := lakebase.NewConnector(e2.OAuthClientDSN("Endpoint=", "Server="+e2.Host))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if st, err := c2.Status(context.Background()); err != nil || st.Endpoint != e2.Endpoint {
		t.Fatalf("autoscaling only: %+v %v", st, err)
	}
}

// Every expiry format of the credential APIs is read; a missing one gives the short
// assumed lifetime (15 minutes), never "forever".
func TestRealService_CredentialExpiryFormats(t *testing.T) {
	for _, format := range []string{lakebasetest.ExpiryRFC3339, lakebasetest.ExpiryRFC3339Nano, lakebasetest.ExpiryEpoch, lakebasetest.ExpiryEpochMillis, lakebasetest.ExpiryNone} {
		t.Run(format, func(t *testing.T) {
			e := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true, CredentialExpiryFormat: format, CredentialLifetime: 40 * time.Minute})
			for _, dsn := range []string{e.OAuthClientDSN(), e.OAuthClientDSN("Endpoint=", "Instance="+e.Instance)} {
				c, err := lakebase.NewConnector(dsn)
				if err != nil {
					t.Fatal(err)
				}
				l, err := c.Login(context.Background())
				c.Close()
				if err != nil {
					t.Fatal(err)
				}
				want := 40 * time.Minute
				if format == lakebasetest.ExpiryNone {
					want = 15 * time.Minute
				}
				if d := time.Until(l.Expiry); d < want-2*time.Minute || d > want+time.Minute {
					t.Fatalf("%s: expires in %v, want about %v", dsn, d, want)
				}
			}
		})
	}
}

// The Databricks CLI keeps its own token cache: after a refusal the driver asks it
// for a fresh token (--force-refresh, on CLIs that have it).
func TestRealService_CLIForcedToRefreshAfterARefusal(t *testing.T) {
	needServers(t)
	args := filepath.Join(t.TempDir(), "args")
	tokFile := filepath.Join(t.TempDir(), "tok")
	first := spToken(t)
	os.WriteFile(tokFile, []byte(first), 0o600)
	second := spToken(t)
	fakeCLI(t, fmt.Sprintf(`if [ "$1" = version ]; then echo "Databricks CLI v0.297.1"; exit 0; fi
echo "$@" >> %s
case "$*" in *--force-refresh*) tok=%s ;; *) tok=$(cat %s) ;; esac
printf '{"access_token":"%%s","token_type":"Bearer","expiry":"%s"}' "$tok"
`, args, second, tokFile, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
	c, err := lakebase.NewConnector(emu.DatabaseDSN("AuthScheme=DatabricksCLI", "User="+emu.ServicePrincipal.ClientID))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	emu.Revoke(first)
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatalf("login after the CLI's cached token was revoked: %v", err)
	}
	b, _ := os.ReadFile(args)
	calls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(calls) != 2 || strings.Contains(calls[0], "--force-refresh") || !strings.Contains(calls[1], "--force-refresh") {
		t.Fatalf("CLI calls:\n%s", b)
	}
}

func TestRealService_OIDCTokenEnvDefaultsAsTheSDK(t *testing.T) {
	cfg, err := lakebase.ParseDSN("AuthScheme=OIDCFederation;DatabricksInstance=dbc-1.cloud.databricks.com;Endpoint=projects/p/branches/b/endpoints/e")
	if err != nil || cfg.OIDCTokenEnv != "DATABRICKS_OIDC_TOKEN" {
		t.Fatalf("%v %v", cfg, err)
	}
	dir := t.TempDir()
	ini := filepath.Join(dir, "databrickscfg")
	os.WriteFile(ini, []byte("[DEFAULT]\nhost = https://dbc-2.cloud.databricks.com\nclient_id = abc\ndatabricks_id_token_filepath = /var/run/secrets/token\n"), 0o600)
	t.Setenv("DATABRICKS_CONFIG_FILE", ini)
	cfg, err = lakebase.ParseDSN("AuthScheme=OIDCFederation;Endpoint=projects/p/branches/b/endpoints/e")
	if err != nil || cfg.OIDCTokenFile != "/var/run/secrets/token" || cfg.DatabricksInstance != "https://dbc-2.cloud.databricks.com" {
		t.Fatalf("profile: %v %v", cfg, err)
	}
}

// spToken is a fresh workspace token of the service principal.
func spToken(t *testing.T) string {
	t.Helper()
	tok, err := spTokenSource(emu).ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// Every workspace and OAuth request carries a User-Agent naming the driver and its
// version, the Go version, the OS and the auth scheme, as the Databricks SDKs do.
func TestRequests_CarryTheDriversUserAgent(t *testing.T) {
	e := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	c, err := lakebase.NewConnector(e.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "lakebase-go/" + lakebase.Version + " go/" + strings.TrimPrefix(runtime.Version(), "go") + " os/" + runtime.GOOS + " auth/oauth-m2m"
	for _, ep := range []string{lakebasetest.EPToken, lakebasetest.EPCredAutoscaling, lakebasetest.EPEndpoints} {
		if got := e.UserAgent(ep); got != want {
			t.Fatalf("%s: User-Agent %q, want %q", ep, got, want)
		}
	}
}
