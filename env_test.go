package lakebase

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnvironment_DatabricksAppsVariables(t *testing.T) {
	env := envOf(map[string]string{
		"PGHOST": "instance-1.database.cloud.databricks.com", "PGPORT": "5433", "PGDATABASE": "appdb",
		"PGUSER": "sp-app-id", "PGSSLMODE": "verify-full", "PGAPPNAME": "my-app",
		"DATABRICKS_HOST": "https://dbc-9.cloud.databricks.com", "DATABRICKS_CLIENT_ID": "sp-app-id",
		"DATABRICKS_CLIENT_SECRET": "env-secret", "DATABRICKS_CONFIG_FILE": "/nonexistent/cfg",
		"PGPASSWORD": "never-read", "PGOPTIONS": "-c x=y",
	})
	c, err := parseDSN("", env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "instance-1.database.cloud.databricks.com" || c.Port != 5433 || c.Database != "appdb" ||
		c.User != "sp-app-id" || c.SSLMode != SSLVerifyFull || c.ApplicationName != "my-app" ||
		c.DatabricksInstance != "https://dbc-9.cloud.databricks.com" || c.OAuthClientID != "sp-app-id" ||
		c.OAuthClientSecret != "env-secret" || c.Password != "" {
		t.Fatalf("config %s", c)
	}
	// The connection string always wins, even with an empty value.
	c, err = parseDSN("Server=explicit.example.com;Port=6000;ApplicationName=;DatabricksInstance=dbc-1.cloud.databricks.com", env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "explicit.example.com" || c.Port != 6000 || c.ApplicationName != DefaultApplicationName ||
		c.DatabricksInstance != "https://dbc-1.cloud.databricks.com" || c.Database != "appdb" {
		t.Fatalf("config %s", c)
	}
	// A bad environment value is an error naming the variable.
	if _, err := parseDSN("", envOf(map[string]string{"PGPORT": "x", "DATABRICKS_HOST": "h"})); err == nil || !strings.Contains(err.Error(), "PGPORT") {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvironment_DatabricksCfgProfiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "databrickscfg")
	os.WriteFile(cfg, []byte(`; comment
[__settings__]
default_profile = prod

[DEFAULT]
host = https://dbc-default.cloud.databricks.com

[prod]
host = https://dbc-prod.cloud.databricks.com/
client_id = prod-sp
client_secret = prod-secret

[pat]
host = dbc-pat.cloud.databricks.com
token = dapi-personal-token
`), 0o600)
	env := map[string]string{"DATABRICKS_CONFIG_FILE": cfg}
	c, err := parseDSN("Endpoint=projects/p/branches/b/endpoints/e", envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabricksInstance != "https://dbc-prod.cloud.databricks.com" || c.OAuthClientID != "prod-sp" || c.OAuthClientSecret != "prod-secret" {
		t.Fatalf("default_profile: %s", c)
	}
	env["DATABRICKS_CONFIG_PROFILE"] = "pat"
	c, err = parseDSN("Endpoint=projects/p/branches/b/endpoints/e", envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabricksInstance != "https://dbc-pat.cloud.databricks.com" || c.OAuthAccessToken != "dapi-personal-token" ||
		c.InitiateOAuth != InitiateOff || c.OAuthExpiresIn != -1 {
		t.Fatalf("PAT profile: %s", c)
	}
	// A scheme chosen in the string is not replaced by the profile's token.
	c, err = parseDSN("AuthScheme=OAuthPKCE;Endpoint=projects/p/branches/b/endpoints/e", envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.OAuthAccessToken != "" || c.InitiateOAuth != InitiateOff || c.DatabricksInstance != "https://dbc-pat.cloud.databricks.com" {
		t.Fatalf("PKCE with a PAT profile: %s", c)
	}
	// The Profile property beats DATABRICKS_CONFIG_PROFILE; env vars beat the profile.
	env["DATABRICKS_CLIENT_SECRET"] = "env-secret"
	c, err = parseDSN("Profile=prod", envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.OAuthClientID != "prod-sp" || c.OAuthClientSecret != "env-secret" {
		t.Fatalf("order: %s", c)
	}
	if _, err := parseDSN("Profile=nope", envOf(env)); err == nil || !strings.Contains(err.Error(), "is not a profile") {
		t.Fatalf("missing profile: %v", err)
	}
	if strings.Contains(c.String(), "env-secret") {
		t.Fatal("String shows a secret from the environment")
	}
}

func TestEnvironment_NoneSetChangesNothing(t *testing.T) {
	c, err := parseDSN(baseM2M, envOf(map[string]string{"DATABRICKS_CONFIG_FILE": "/nonexistent"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "" || c.Port != DefaultPort || c.Timeout != 30*time.Second {
		t.Fatalf("config %s", c)
	}
}
