package lakebase_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// newDB opens a *sql.DB on its own connector, so each test has its own token cache.
func newDB(t testing.TB, dsn string, opts ...lakebase.Option) (*sql.DB, *lakebase.Connector) {
	t.Helper()
	c, err := lakebase.NewConnector(dsn, opts...)
	if err != nil {
		t.Fatalf("NewConnector: %v", err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db, c
}

func currentUser(t *testing.T, db *sql.DB) string {
	t.Helper()
	var u string
	if err := db.QueryRow("SELECT current_user").Scan(&u); err != nil {
		t.Fatalf("SELECT current_user: %v", err)
	}
	return u
}

func TestOAuthClient_AutoscalingAndProvisioned(t *testing.T) {
	needServers(t)
	for name, dsn := range map[string]string{
		"autoscaling endpoint":          emu.OAuthClientDSN(),
		"provisioned instance":          emu.OAuthClientDSN("Endpoint=", "Instance="+emu.Instance),
		"server only, found by listing": emu.OAuthClientDSN("Endpoint=", "Server="+emu.Host),
	} {
		t.Run(name, func(t *testing.T) {
			db, _ := newDB(t, dsn)
			if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
				t.Fatalf("current_user = %q, want the client id", u)
			}
			mustExec(t, db, `CREATE TABLE IF NOT EXISTS m2m_t (v int)`)
			mustExec(t, db, `INSERT INTO m2m_t VALUES (1)`)
			mustExec(t, db, `DROP TABLE m2m_t`)
		})
	}
}

func TestOAuthClient_ServerMatchingNothingSaysSetInstanceOrEndpoint(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthClientDSN("Endpoint=", "Server=db.nowhere.example"))
	err := db.Ping()
	if err == nil || !strings.Contains(err.Error(), "set Instance or Endpoint") || !errors.Is(err, lakebase.ErrCredential) {
		t.Fatalf("err = %v", err)
	}
}

func TestOAuthClient_ConcurrentConnectsShareOneTokenAndOneCredential(t *testing.T) {
	needServers(t)
	emu.ResetCounts()
	db, c := newDB(t, emu.OAuthClientDSN())
	db.SetMaxIdleConns(0) // every query opens a fresh physical connection
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	start := make(chan struct{})
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var one int
			if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := emu.Count(lakebasetest.EPToken); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
	if got := emu.Count(lakebasetest.EPCredAutoscaling); got != 1 {
		t.Errorf("credential requests = %d, want 1", got)
	}
	if got := emu.Count(lakebasetest.EPLogin); got < 2 {
		t.Errorf("logins = %d; the test did not open concurrent connections", got)
	}
	if s := c.TokenStats(); s.Credential.Fetches != 1 || s.WorkspaceToken.Fetches != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestOAuthClient_ShortCredentialsAreRefreshedAhead(t *testing.T) {
	needServers(t)
	if testing.Short() {
		t.Skip("30 s run")
	}
	emu.SetCredentialLifetime(10 * time.Second) // handed out until 2 s before expiry: a connect on a loaded machine fits
	t.Cleanup(func() { emu.SetCredentialLifetime(0) })
	emu.ResetCounts()
	mintsSeen := &mintLog{}
	db, c := newDB(t, emu.OAuthClientDSN(), lakebase.WithObserver(mintsSeen))
	db.SetMaxIdleConns(0)
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	queries := 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var one int
				err := db.QueryRow("SELECT 1").Scan(&one)
				mu.Lock()
				queries++
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d queries failed; first: %v", len(failures), queries, failures[0])
	}
	s := c.TokenStats().Credential
	mints := emu.Count(lakebasetest.EPCredAutoscaling)
	t.Logf("%d queries, %d credential mints (%d ahead of expiry), %d connects waited for the first credential, %d stalled later, refused logins %d",
		queries, mints, s.AheadFetches, s.Waits-s.Stalls, s.Stalls, emu.Count(lakebasetest.EPLoginRefused))
	slow := int64(mintsSeen.excused())
	if s.Stalls != 0 && slow == 0 {
		t.Errorf("%d connects after the first credential waited for a new one though every refresh ahead and login came in time", s.Stalls)
	} else if slow > 0 {
		t.Logf("%d late refreshes or logins outlived by their credential (the machine was that slow)", slow)
	}
	// Every mint after the first is ahead of expiry, but for one a connect started
	// because the machine was too slow.
	if mints < 1+s.AheadFetches || mints > 1+s.AheadFetches+slow || s.AheadFetches+slow < 4 {
		t.Errorf("credential mints = %d, ahead-of-expiry refreshes = %d, slow = %d: every mint after the first must be ahead of expiry", mints, s.AheadFetches, slow)
	}
	if r, expired := emu.Count(lakebasetest.EPLoginRefused), int64(mintsSeen.excused())-int64(mintsSeen.late()); r > expired {
		t.Errorf("%d logins were refused, %d of them outlived by their credential", r, expired)
	}
}

func TestOAuthClient_IdPOutageWithValidTokenCausesNoError(t *testing.T) {
	needServers(t)
	db, _ := newDB(t, emu.OAuthClientDSN())
	db.SetMaxIdleConns(0)
	currentUser(t, db) // warm: token and credential cached
	emu.SetOutage(true)
	defer emu.SetOutage(false)
	for i := 0; i < 5; i++ {
		currentUser(t, db)
	}
}

func TestOAuthClient_RevokedCredentialReplacedAfterOne28P01(t *testing.T) {
	needServers(t)
	db, c := newDB(t, emu.OAuthClientDSN())
	db.SetMaxIdleConns(0)
	currentUser(t, db)
	emu.ResetCounts()
	emu.RevokeAllCredentials()
	currentUser(t, db)
	if r := emu.Count(lakebasetest.EPLoginRefused); r != 1 {
		t.Fatalf("refused logins = %d, want exactly 1", r)
	}
	if m := emu.Count(lakebasetest.EPCredAutoscaling); m != 1 {
		t.Fatalf("credential mints after revocation = %d, want 1", m)
	}
	currentUser(t, db)
	if s := c.TokenStats(); s.Credential.Fetches != 2 || s.Credential.Stalls != 1 {
		t.Fatalf("credential fetches = %d, want 2", s.Credential.Fetches)
	}
}

// An identity without a Postgres role is refused as if its password were wrong
// (28P01, as Lakebase answers it); after the retry with a fresh credential the
// driver asks the roles API and says what is missing and how to make it.
func TestOAuthClient_MissingRoleIsNoRoleErrorNamingIdentity(t *testing.T) {
	needServers(t)
	if err := emu.AddServicePrincipal("sp-without-role", "sp-secret"); err != nil {
		t.Fatal(err)
	}
	if err := emu.DropRole("sp-without-role"); err != nil {
		t.Fatal(err)
	}
	db, _ := newDB(t, emu.OAuthClientDSN("OAuthClientId=sp-without-role", "OAuthClientSecret=sp-secret"))
	err := db.Ping()
	var le *lakebase.LoginError
	var ne *lakebase.NoRoleError
	if !errors.As(err, &le) || le.SQLState != "28P01" || le.User != "sp-without-role" || !errors.As(err, &ne) || !errors.Is(err, lakebase.ErrNoRole) {
		t.Fatalf("err = %v, want a NoRoleError for sp-without-role (28P01)", err)
	}
	if !strings.Contains(err.Error(), "lakebase role create sp-without-role") || strings.Contains(err.Error(), "sp-secret") {
		t.Fatalf("message = %v", err)
	}
}

func TestOAuthClient_WrongSecretIsInvalidClientNotRetried(t *testing.T) {
	needServers(t)
	emu.ResetCounts()
	db, _ := newDB(t, emu.OAuthClientDSN("OAuthClientSecret=wrong-secret-value"))
	err := db.Ping()
	var te *lakebase.TokenError
	if !errors.As(err, &te) || te.Code != "invalid_client" {
		t.Fatalf("err = %v, want TokenError invalid_client", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatal("the error shows the secret")
	}
	if n := emu.Count(lakebasetest.EPToken); n != 1 {
		t.Fatalf("token requests = %d; invalid_client must not be retried", n)
	}
}

func TestOAuthClient_TransientFailuresAreRetried(t *testing.T) {
	needServers(t)
	emu.ResetCounts()
	emu.SetErrorRate(lakebasetest.EPToken, 1)
	db, _ := newDB(t, emu.OAuthClientDSN())
	err := db.Ping()
	emu.SetErrorRate(lakebasetest.EPToken, 0)
	var te *lakebase.TokenError
	if !errors.As(err, &te) || te.StatusCode != 503 {
		t.Fatalf("err = %v, want TokenError 503", err)
	}
	if n := emu.Count(lakebasetest.EPToken); n != 8 {
		t.Fatalf("token requests = %d, want 8 attempts", n)
	}
	// With the IdP back, the same connector recovers.
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
}

// m2mAccessToken gets a workspace token for the service principal.
func m2mAccessToken(t *testing.T) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"all-apis"}}
	req, _ := http.NewRequest("POST", emu.URL+"/oidc/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(emu.ServicePrincipal.ClientID, emu.ServicePrincipal.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tr)
	return tr.AccessToken
}

func TestInitiateOAuth_Modes(t *testing.T) {
	needServers(t)
	t.Run("OFF without a token says how to get one", func(t *testing.T) {
		db, _ := newDB(t, emu.OAuthClientDSN("InitiateOAuth=OFF"))
		err := db.Ping()
		if !errors.Is(err, lakebase.ErrNoToken) || !strings.Contains(err.Error(), "GetOAuthAccessToken") || !strings.Contains(err.Error(), "GETANDREFRESH") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("OFF uses the given token and never calls the IdP", func(t *testing.T) {
		tok := m2mAccessToken(t)
		emu.ResetCounts()
		db, _ := newDB(t, emu.OAuthClientDSN("InitiateOAuth=OFF", "OAuthClientSecret=", "OAuthAccessToken="+tok))
		if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
			t.Fatalf("user %q", u)
		}
		if n := emu.Count(lakebasetest.EPToken); n != 0 {
			t.Fatalf("token requests = %d", n)
		}
	})
	t.Run("REFRESH reads the JWT exp of a given token", func(t *testing.T) {
		tok := m2mAccessToken(t)
		emu.ResetCounts()
		db, _ := newDB(t, emu.OAuthClientDSN("InitiateOAuth=REFRESH", "OAuthAccessToken="+tok))
		currentUser(t, db)
		if n := emu.Count(lakebasetest.EPToken); n != 0 {
			t.Fatalf("token requests = %d; the token's exp said it was valid", n)
		}
	})
	t.Run("REFRESH with an expired given token and no refresh token fails without prompting", func(t *testing.T) {
		ts := time.Now().Add(-2 * time.Hour).UnixMilli()
		db, _ := newDB(t, emu.OAuthClientDSN("InitiateOAuth=REFRESH", "OAuthAccessToken=opaque-token",
			"OAuthExpiresIn=3600", fmt.Sprintf("OAuthTokenTimestamp=%d", ts)))
		if err := db.Ping(); !errors.Is(err, lakebase.ErrNoToken) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("GETANDREFRESH gets a token by client credentials", func(t *testing.T) {
		emu.ResetCounts()
		db, _ := newDB(t, emu.OAuthClientDSN())
		currentUser(t, db)
		if n := emu.Count("token:client_credentials"); n != 1 {
			t.Fatalf("client_credentials requests = %d", n)
		}
	})
	t.Run("REFRESH redeems a given refresh token and persists the rotated one", func(t *testing.T) {
		rt := userRefreshToken(t)
		file := filepath.Join(t.TempDir(), "settings.json")
		dsn := emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthRefreshToken="+rt, "OAuthSettingsLocation="+file)
		db, _ := newDB(t, dsn)
		if u := currentUser(t, db); u != emu.User.Email {
			t.Fatalf("current_user = %q, want the SCIM userName %q", u, emu.User.Email)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"`+rt+`"`) || !strings.Contains(string(data), "refresh_token") {
			t.Fatal("the settings file does not hold the rotated refresh token")
		}
		fi, _ := os.Stat(file)
		di, _ := os.Stat(filepath.Dir(file))
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("settings file mode %v", fi.Mode().Perm())
		}
		_ = di
	})
}

// userRefreshToken runs an auto-approved PKCE login against the emulator and
// returns the refresh token.
func userRefreshToken(t testing.TB) string {
	t.Helper()
	db, _ := newDB(t, emu.OAuthPKCEDSN("OAuthSettingsLocation=memory://"+t.Name()))
	emu.SetAutoApprove(true)
	defer emu.SetAutoApprove(false)
	var u, state, verifier string
	if err := db.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&u, &state, &verifier); err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirectClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	var at, rt sql.NullString
	var exp int64
	if err := db.QueryRow("EXEC GetOAuthAccessToken Verifier=?, State=?", loc.Query().Get("code"), state).Scan(&at, &rt, &exp); err != nil {
		t.Fatal(err)
	}
	if !rt.Valid || rt.String == "" {
		t.Fatal("no refresh token")
	}
	return rt.String
}

var noRedirectClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestSettingsFile_CorruptIsErrorAndLeftAlone(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	corrupt := []byte(`{"version":1,"tokens":{"x": [broken`)
	if err := os.WriteFile(file, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	db, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file))
	err := db.Ping()
	if !errors.Is(err, lakebase.ErrSettingsFile) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("err = %v", err)
	}
	if got, _ := os.ReadFile(file); string(got) != string(corrupt) {
		t.Fatal("the corrupt file was changed")
	}
}

func TestSettingsFile_GroupWritableIsRefused(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(file, []byte(`{"version":1,"tokens":{}}`), 0o600)
	os.Chmod(file, 0o666)
	db, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file))
	if err := db.Ping(); !errors.Is(err, lakebase.ErrSettingsFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("err = %v", err)
	}
}

// TestSettingsFile_TwoProcessesShareRotatingRefreshTokens runs two processes that
// each refresh the same stored login many times; with rotation and reuse detection
// on, not one refresh token may be redeemed twice.
func TestSettingsFile_TwoProcessesShareRotatingRefreshTokens(t *testing.T) {
	needServers(t)
	sharedRefreshRun(t, 2, 15)
}

// helperRefreshLoop runs in a child process (TestMain dispatches to it): it opens a
// new connector per iteration, so nothing is cached in memory, and logs in through
// the shared file. With 1 s tokens every login refreshes.
func helperRefreshLoop() int {
	dsn := os.Getenv("LAKEBASE_HELPER_DSN")
	var n int
	fmt.Sscan(os.Getenv("LAKEBASE_HELPER_N"), &n)
	for i := 0; i < n; i++ {
		c, err := lakebase.NewConnector(dsn)
		if err != nil {
			fmt.Println("helper:", err)
			return 1
		}
		db := sql.OpenDB(c)
		var u string
		// The workspace token itself (a warm process would not need it to log in).
		if _, err = c.TokenSource().Token(); err == nil {
			err = db.QueryRow("SELECT current_user").Scan(&u)
		}
		db.Close()
		if err != nil {
			fmt.Println("helper: iteration", i, err)
			return 1
		}
	}
	fmt.Println("helper ok")
	return 0
}

func TestPgxpool_BeforeConnect(t *testing.T) {
	needServers(t)
	c, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pool := poolOf(t, c)
	var u string
	if err := pool.QueryRow(context.Background(), "SELECT current_user").Scan(&u); err != nil || u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user = %q, %v", u, err)
	}
}

func TestSettingsLocation_UnwritableIsAWarningForOAuthClientAndAnErrorForPKCE(t *testing.T) {
	needServers(t)
	unwritable := "/proc/lakebase-cannot-exist/settings.json" // no directory can be made under /proc
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	db, _ := newDB(t, emu.OAuthClientDSN("OAuthSettingsLocation="+unwritable), lakebase.WithLogger(logger))
	if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user = %q", u)
	}
	if !strings.Contains(logs.String(), "cannot be written; keeping tokens in memory") {
		t.Fatalf("no warning logged:\n%s", logs.String())
	}
	pk, _ := newDB(t, emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthRefreshToken=x", "OAuthSettingsLocation="+unwritable))
	if err := pk.Ping(); !errors.Is(err, lakebase.ErrSettingsFile) {
		t.Fatalf("OAuthPKCE with an unwritable location: %v", err)
	}
}

// poolOf opens a pgxpool on c's PoolConfig, closed when t ends.
func poolOf(t testing.TB, c *lakebase.Connector) *pgxpool.Pool {
	t.Helper()
	pc, err := c.PoolConfig()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
