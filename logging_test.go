package lakebase_test

import (
	"bytes"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestLogs_NeverHoldASecret runs every flow at the highest verbosity, into a Logfile
// and a WithLogger handler, and scans all log output and every error for every
// secret in play: client secrets, access and refresh tokens, database credentials,
// authorization codes and PKCE verifiers.
func TestLogs_NeverHoldASecret(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	logfile := filepath.Join(t.TempDir(), "lakebase.log")
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 8}))
	var errs []string
	var secrets []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	// OAuthClient, with retries and a refused login on the way.
	m2m, _ := newDB(t, e.OAuthClientDSN("Verbosity=5", "Logfile="+logfile))
	m2m.SetMaxIdleConns(0)
	// Every credential request fails for a while: the driver retries (and logs it).
	e.SetErrorRate(lakebasetest.EPCredAutoscaling, 1)
	flaky, _ := newDB(t, e.OAuthClientDSN("Verbosity=5", "Logfile="+logfile, "Timeout=1"))
	note(flaky.Ping())
	e.SetErrorRate(lakebasetest.EPCredAutoscaling, 0)
	for i := 0; i < 3; i++ {
		var u string
		note(m2m.QueryRow("SELECT current_user").Scan(&u))
	}
	e.RevokeAllCredentials()
	var u string
	note(m2m.QueryRow("SELECT current_user").Scan(&u))

	// A wrong secret.
	bad, _ := newDB(t, e.OAuthClientDSN("OAuthClientSecret=definitely-wrong-secret"), lakebase.WithLogger(logger))
	note(bad.Ping())
	secrets = append(secrets, "definitely-wrong-secret")

	// OAuthPKCE through the procedures, then a refresh.
	e.SetAutoApprove(true)
	pk, _ := newDB(t, e.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://logscan"), lakebase.WithLogger(logger))
	var authURL, state, verifier string
	note(pk.QueryRow("EXEC GetOAuthAuthorizationURL").Scan(&authURL, &state, &verifier))
	secrets = append(secrets, verifier)
	resp, err := noRedirectClient.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code := strings.SplitN(strings.SplitN(resp.Header.Get("Location"), "code=", 2)[1], "&", 2)[0]
	var at, rt sql.NullString
	var exp int64
	note(pk.QueryRow("EXEC GetOAuthAccessToken Verifier=?, State=?", code, state).Scan(&at, &rt, &exp))
	note(pk.QueryRow("EXEC RefreshOAuthAccessToken OAuthRefreshToken=?", rt.String).Scan(&at, &rt, &exp))
	note(pk.QueryRow("SELECT current_user").Scan(&u))
	// A reused refresh token and a bad verifier.
	_, err = pk.Exec("EXEC RefreshOAuthAccessToken OAuthRefreshToken='used-or-bogus-token'")
	note(err)
	_, err = pk.Exec("EXEC GetOAuthAccessToken Verifier='bogus-code', PKCEVerifier='bogus-verifier-value'")
	note(err)
	secrets = append(secrets, "used-or-bogus-token", "bogus-code", "bogus-verifier-value")

	m2m.Close()
	pk.Close()
	file, _ := os.ReadFile(logfile)
	all := string(file) + buf.String() + strings.Join(errs, "\n")
	secrets = append(secrets, e.IssuedSecrets()...)
	if len(file) == 0 || !strings.Contains(string(file), "refreshed") && !strings.Contains(string(file), "fetched") {
		t.Fatalf("the Logfile has no token events:\n%s", file)
	}
	for _, want := range []string{"retrying after a transient failure", "login refused; minting a fresh credential"} {
		if !strings.Contains(string(file), want) {
			t.Errorf("the Logfile lacks %q", want)
		}
	}
	for _, s := range secrets {
		if len(s) < 6 {
			continue
		}
		if i := strings.Index(all, s); i >= 0 {
			t.Fatalf("a secret (%d chars) appears in the logs or errors near: %q", len(s), all[max(0, i-80):i])
		}
	}
	t.Logf("scanned %d bytes of logs and %d errors for %d secrets", len(all), len(errs), len(secrets))
}
