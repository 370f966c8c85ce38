package lakebase_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
