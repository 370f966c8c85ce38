package lakebase_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/oauth"
)

func TestReadOnly_ConnectsToTheReadOnlyHost(t *testing.T) {
	needServers(t)
	for name, dsn := range map[string]string{
		"provisioned read_only_dns":  emu.OAuthClientDSN("Endpoint=", "Instance="+emu.Instance, "ReadOnly=true"),
		"autoscaling read_only_host": emu.OAuthClientDSN("ReadOnly=true"),
	} {
		t.Run(name, func(t *testing.T) {
			db, c := newDB(t, dsn)
			st, err := c.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Host != emu.ReadOnlyHost {
				t.Fatalf("host %q, want the read-only host %q", st.Host, emu.ReadOnlyHost)
			}
			var ro string
			if err := db.QueryRow("SHOW transaction_read_only").Scan(&ro); err != nil || ro != "on" {
				t.Fatalf("transaction_read_only = %q (%v)", ro, err)
			}
			_, err = db.Exec("CREATE TABLE ro_t (v int)")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "25006" {
				t.Fatalf("a write on the replica: %v", err)
			}
		})
	}
	rw, _ := newDB(t, emu.OAuthClientDSN())
	var ro string
	if err := rw.QueryRow("SHOW transaction_read_only").Scan(&ro); err != nil || ro != "off" {
		t.Fatalf("read-write: transaction_read_only = %q (%v)", ro, err)
	}
}

// The read-only hosts (the endpoint's and the instance's read-only host, and the
// read-only pooled host) are a hot standby of the primary, as a replica is: they
// refuse every write whatever the session sets (25006, or 0A000 "cannot set
// transaction read-write mode during recovery" for SET TRANSACTION READ WRITE), and
// their reads see what the primary committed once it is replayed.
func TestReadOnly_HostsRefuseWritesWhateverTheSessionSets(t *testing.T) {
	needServers(t)
	e := pooledEmulator(t, lakebasetest.Options{})
	sp := pgx.Identifier{e.ServicePrincipal.ClientID}.Sanitize()
	if err := e.Exec("CREATE TABLE ro_data (v int); INSERT INTO ro_data VALUES (1); GRANT ALL ON ro_data TO " + sp); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rw, _ := newDB(t, e.OAuthClientDSN())
	hosts := map[string]string{
		"endpoint read_only_host":        e.OAuthClientDSN("ReadOnly=true"),
		"instance read_only_dns":         e.OAuthClientDSN("Endpoint=", "Instance="+e.Instance, "ReadOnly=true"),
		"endpoint read_only_pooled_host": e.OAuthClientDSN("ReadOnly=true", "Pooled=true"),
	}
	want := func(t *testing.T, what string, err error, codes ...string) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !slices.Contains(codes, pe.Code) {
			t.Fatalf("%s: %v, want SQLSTATE %v", what, err, codes)
		}
	}
	for name, dsn := range hosts {
		t.Run(name, func(t *testing.T) {
			ro, _ := newDB(t, dsn)
			var recovery bool
			if err := ro.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil || !recovery {
				t.Fatalf("the read-only host is not a standby: pg_is_in_recovery() = %v, %v", recovery, err)
			}
			// A row committed on the primary now is read once the standby has replayed it.
			if _, err := rw.ExecContext(ctx, "INSERT INTO ro_data VALUES (2)"); err != nil {
				t.Fatal(err)
			}
			var lsn string
			if err := rw.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
				t.Fatal(err)
			}
			for caughtUp := false; !caughtUp; {
				if err := ro.QueryRowContext(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&caughtUp); err != nil {
					t.Fatal(err)
				}
				if !caughtUp {
					time.Sleep(10 * time.Millisecond)
				}
			}
			var n int
			if err := ro.QueryRowContext(ctx, "SELECT count(*) FROM ro_data WHERE v = 2").Scan(&n); err != nil || n != 1 {
				t.Fatalf("reading the primary's committed row: %d, %v", n, err)
			}
			if _, err := rw.ExecContext(ctx, "DELETE FROM ro_data WHERE v = 2"); err != nil {
				t.Fatal(err)
			}

			// In a transaction: asking for read-write is refused by the standby.
			tx, err := ro.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tx.ExecContext(ctx, "SET TRANSACTION READ WRITE")
			if err == nil {
				_, err = tx.ExecContext(ctx, "INSERT INTO ro_data VALUES (3)")
				want(t, "BEGIN; SET TRANSACTION READ WRITE; INSERT", err, "25006")
			} else {
				want(t, "BEGIN; SET TRANSACTION READ WRITE", err, "0A000")
			}
			tx.Rollback()
			tx, err = ro.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "SET LOCAL default_transaction_read_only = off"); err != nil {
				t.Fatalf("SET LOCAL default_transaction_read_only = off: %v", err)
			}
			_, err = tx.ExecContext(ctx, "INSERT INTO ro_data VALUES (3)")
			want(t, "BEGIN; SET LOCAL default_transaction_read_only = off; INSERT", err, "25006")
			tx.Rollback()
			if !strings.Contains(name, "pooled") {
				// One direct session set read-write by every session-level means.
				conn, err := ro.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				for _, set := range []string{"SET default_transaction_read_only = off", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
					"SET TRANSACTION READ WRITE", "RESET ALL", "SET default_transaction_read_only = off"} {
					conn.ExecContext(ctx, set)
				}
				for _, w := range []string{"INSERT INTO ro_data VALUES (3)", "UPDATE ro_data SET v = 4", "DELETE FROM ro_data", "CREATE TABLE ro_t (v int)"} {
					_, err := conn.ExecContext(ctx, w)
					want(t, "session set read-write; "+w, err, "25006")
				}
			}
		})
	}
	var n int
	if err := rw.QueryRowContext(ctx, "SELECT count(*) FROM ro_data").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the primary holds %d rows (%v), want 1", n, err)
	}
}

// fakeCLI writes a databricks executable that answers "auth token" with script.
func fakeCLI(t *testing.T, script string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "databricks"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DATABRICKS_CLI_PATH", "")
}

// userAccessToken logs the emulator's user in and returns the access token.
func userAccessToken(t *testing.T) string {
	t.Helper()
	rt := userRefreshToken(t)
	tok, err := (&oauth.TokenClient{Discovery: &oauth.Discovery{Workspace: emu.URL}, ClientID: "databricks-cli"}).Refresh(context.Background(), rt)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func TestDatabricksCLI_ReusesTheCLILogin(t *testing.T) {
	needServers(t)
	tok := userAccessToken(t)
	argsFile := filepath.Join(t.TempDir(), "args")
	fakeCLI(t, fmt.Sprintf(`echo "$@" > %s
cat <<JSON
{"access_token": "%s", "token_type": "Bearer", "expiry": "%s"}
JSON
`, argsFile, tok, time.Now().Add(time.Hour).Format(time.RFC3339)))
	db, _ := newDB(t, emu.OAuthPKCEDSN("AuthScheme=DatabricksCLI"))
	if u := currentUser(t, db); u != emu.User.Email {
		t.Fatalf("current_user = %q", u)
	}
	args, _ := os.ReadFile(argsFile)
	if strings.TrimSpace(string(args)) != "auth token --host "+emu.URL {
		t.Fatalf("the CLI ran with %q", args)
	}
	// A profile is passed as --profile.
	t.Setenv("DATABRICKS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	db2, _ := newDB(t, emu.OAuthPKCEDSN("AuthScheme=DatabricksCLI", "Profile=work"))
	currentUser(t, db2)
	if args, _ := os.ReadFile(argsFile); strings.TrimSpace(string(args)) != "auth token --profile work" {
		t.Fatalf("the CLI ran with %q", args)
	}
}

func TestDatabricksCLI_ClearErrors(t *testing.T) {
	needServers(t)
	fakeCLI(t, `echo "Error: cannot load token for $3: not logged in" >&2; exit 1`)
	db, _ := newDB(t, emu.OAuthPKCEDSN("AuthScheme=DatabricksCLI"))
	err := db.Ping()
	if !errors.Is(err, oauth.ErrCLI) || !strings.Contains(err.Error(), "not logged in") || !strings.Contains(err.Error(), "databricks auth login --host") {
		t.Fatalf("logged out: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	db2, _ := newDB(t, emu.OAuthPKCEDSN("AuthScheme=DatabricksCLI"))
	if err := db2.Ping(); !errors.Is(err, oauth.ErrCLI) || !strings.Contains(err.Error(), "was not found") {
		t.Fatalf("missing CLI: %v", err)
	}
}

func TestOIDCFederation_ExchangesAWorkloadToken(t *testing.T) {
	needServers(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const issuer, audience = "https://token.actions.githubusercontent.com", "https://github.com/lakebase-go"
	emu.TrustIssuer(issuer, &key.PublicKey, audience, emu.ServicePrincipal.ClientID)
	sign := func(iss string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": iss, "aud": audience, "sub": "repo:lakebase-go/app:ref:refs/heads/main",
			"exp": time.Now().Add(10 * time.Minute).Unix(), "iat": time.Now().Unix(),
		})
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte(sign(issuer)+"\n"), 0o600)
	db, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=OIDCFederation", "OAuthClientSecret=", "OIDCTokenFile="+file))
	if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user = %q", u)
	}
	t.Setenv("MY_OIDC_TOKEN", sign(issuer))
	db2, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=OIDCFederation", "OAuthClientSecret=", "OIDCTokenEnv=MY_OIDC_TOKEN"))
	currentUser(t, db2)

	t.Setenv("MY_OIDC_TOKEN", sign("https://evil.example.com"))
	db3, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=OIDCFederation", "OAuthClientSecret=", "OIDCTokenEnv=MY_OIDC_TOKEN"))
	var te *lakebase.TokenError
	if err := db3.Ping(); !errors.As(err, &te) || te.Code != "invalid_grant" {
		t.Fatalf("untrusted issuer: %v", err)
	}
	// Neither a file nor a variable named: DATABRICKS_OIDC_TOKEN, as the SDKs read it.
	t.Setenv("DATABRICKS_OIDC_TOKEN", "")
	db4, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=OIDCFederation", "OAuthClientSecret="))
	if err := db4.Ping(); err == nil || !strings.Contains(err.Error(), "DATABRICKS_OIDC_TOKEN") {
		t.Fatalf("no token anywhere: %v", err)
	}
	t.Setenv("DATABRICKS_OIDC_TOKEN", sign(issuer))
	db5, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=OIDCFederation", "OAuthClientSecret="))
	currentUser(t, db5)
}

func TestAzureAD_EntraTokenMintsTheCredential(t *testing.T) {
	needServers(t)
	emu.ResetCounts()
	db, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=AzureAD", "AzureTenant="+emu.AzureTenant, "AzureAuthorityHost="+emu.URL))
	if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user = %q", u)
	}
	if emu.Count("entra.token") != 1 || emu.Count(lakebasetest.EPToken) != 0 {
		t.Fatalf("entra %d, workspace token endpoint %d", emu.Count("entra.token"), emu.Count(lakebasetest.EPToken))
	}
	bad, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=AzureAD", "AzureTenant="+emu.AzureTenant, "AzureAuthorityHost="+emu.URL, "OAuthClientSecret=nope-nope"))
	var te *lakebase.TokenError
	if err := bad.Ping(); !errors.As(err, &te) || te.Code != "invalid_client" || strings.Contains(err.Error(), "nope-nope") {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := lakebase.ParseDSN(emu.OAuthClientDSN("AuthScheme=AzureAD")); err == nil || !strings.Contains(err.Error(), "AzureTenant") {
		t.Fatalf("no tenant: %v", err)
	}
}

func TestAzureMSI_ManagedIdentityFromTheMetadataEndpoint(t *testing.T) {
	needServers(t)
	const msi = "5b7e2c1d-aaaa-4bbb-8ccc-0123456789ab"
	if err := emu.SetManagedIdentity(msi); err != nil {
		t.Fatal(err)
	}
	imds := emu.URL + "/metadata/identity/oauth2/token"
	db, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=AzureMSI", "OAuthClientId=", "OAuthClientSecret=", "AzureMSIEndpoint="+imds))
	if u := currentUser(t, db); u != msi {
		t.Fatalf("system-assigned: current_user = %q", u)
	}
	db2, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=AzureMSI", "OAuthClientId="+msi, "OAuthClientSecret=", "AzureMSIEndpoint="+imds))
	if u := currentUser(t, db2); u != msi {
		t.Fatalf("user-assigned: current_user = %q", u)
	}
	db3, _ := newDB(t, emu.OAuthClientDSN("AuthScheme=AzureMSI", "OAuthClientId=not-this-identity", "OAuthClientSecret=", "AzureMSIEndpoint="+imds))
	if err := db3.Ping(); err == nil || !strings.Contains(err.Error(), "managed identity") {
		t.Fatalf("unknown identity: %v", err)
	}
	if _, err := lakebase.ParseDSN(emu.OAuthClientDSN("AuthScheme=AzureMSI", "AzureMSIEndpoint=http://imds.example.com/token")); err == nil {
		t.Fatal("a plain-http metadata endpoint off the machine was accepted")
	}
}
