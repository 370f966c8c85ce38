package lakebase

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lakebase-go/lakebase/internal/dbcfg"
	"github.com/lakebase-go/lakebase/internal/httpx"
)

// Environment conventions. When a connection string leaves a property out, ParseDSN
// takes it from, in this order (the first that has it wins):
//
//  1. the connection string itself (always wins, even with an empty value);
//  2. the Postgres variables Databricks Apps inject: PGHOST (Server), PGPORT (Port),
//     PGDATABASE (Database), PGUSER (User), PGSSLMODE (SSLMode), PGAPPNAME
//     (ApplicationName);
//  3. DATABRICKS_HOST (DatabricksInstance), DATABRICKS_CLIENT_ID (OAuthClientId),
//     DATABRICKS_CLIENT_SECRET (OAuthClientSecret), DATABRICKS_OIDC_TOKEN_FILEPATH
//     (OIDCTokenFile), DATABRICKS_OIDC_TOKEN_ENV (OIDCTokenEnv), ARM_TENANT_ID
//     (AzureTenant);
//  4. a profile of ~/.databrickscfg (or DATABRICKS_CONFIG_FILE): the one named by the
//     Profile property or DATABRICKS_CONFIG_PROFILE, else [__settings__]
//     default_profile, else DEFAULT when it exists. Its host, client_id and
//     client_secret fill DatabricksInstance, OAuthClientId and OAuthClientSecret; a
//     token (a personal access token) fills OAuthAccessToken, never expiring. A
//     profile whose host is not the workspace named by 1-3 gives nothing (one named
//     by Profile or DATABRICKS_CONFIG_PROFILE is then an error).
//
// Only these variables are read; nothing else of the environment (PGPASSWORD,
// PGOPTIONS, .pgpass, service files) changes a connection. A Config built by hand and
// passed to NewConnectorFromConfig takes nothing from the environment.

// The variables and profile keys of each property are in the property table
// (connstr.Prop PgEnv, Env, Profile); these lists are drawn from it, in its order.
var pgEnv, databricksEnv, profileKeys = environmentSources()

type envSource struct{ env, prop string }

type profileSource struct{ key, prop string }

func environmentSources() (pg, databricks []envSource, profileKeys []profileSource) {
	for _, p := range properties {
		if p.PgEnv != "" {
			pg = append(pg, envSource{p.PgEnv, p.Name})
		}
		if p.Env != "" {
			databricks = append(databricks, envSource{p.Env, p.Name})
		}
		if p.Profile != "" {
			profileKeys = append(profileKeys, profileSource{p.Profile, p.Name})
		}
	}
	return pg, databricks, profileKeys
}

// envValue is one property value the environment offers, with where it came from.
type envValue struct{ prop, value, source string }

// fromEnvironment lists, in the order they apply, the values the environment and the
// selected profile offer for the properties the connection string did not give (c is
// the string's configuration, only read). ignored lists the variables left unused
// because the string names the database.
func fromEnvironment(c *Config, givenByString map[string]bool, getenv func(string) string) (vals []envValue, ignored []string, err error) {
	given := make(map[string]bool, len(givenByString))
	for k, v := range givenByString {
		given[k] = v
	}
	offer := func(prop, value, source string) {
		if given[prop] || value == "" {
			return
		}
		vals = append(vals, envValue{prop, value, source})
		given[prop] = true
	}
	// LAKEBASE_ENDPOINT (Databricks Apps, the official Node client) names the endpoint
	// when the string names no database.
	if !given["Endpoint"] && !given["Instance"] && !given["Project"] {
		offer("Endpoint", getenv("LAKEBASE_ENDPOINT"), "LAKEBASE_ENDPOINT")
	}
	for _, e := range pgEnv {
		if (e.prop == "Server" || e.prop == "Port") && (given["Endpoint"] || given["Instance"] || given["Project"]) && getenv(e.env) != "" {
			// The database is named: its host comes from the workspace. A stray PGHOST
			// must not send the credential elsewhere.
			ignored = append(ignored, e.env)
			continue
		}
		offer(e.prop, getenv(e.env), e.env)
	}
	for _, e := range databricksEnv {
		offer(e.prop, getenv(e.env), e.env)
	}
	profile, err := loadProfile(c, getenv)
	if err != nil || profile == nil {
		return vals, ignored, err
	}
	// A profile's credentials belong to its host: with a workspace named elsewhere
	// (the string, DATABRICKS_HOST) that is another host, nothing of the profile is
	// taken, so its client secret or token never goes to that workspace. A profile
	// asked for by name is then an error; the default one is left out.
	if ws, ph := givenWorkspace(c, givenByString, vals), profile.Values["host"]; ws != "" && ph != "" && !sameWorkspace(ws, ph) {
		if c.Profile != "" || getenv("DATABRICKS_CONFIG_PROFILE") != "" {
			return nil, nil, &ConfigError{Property: "Profile", Value: profile.Name, Err: fmt.Errorf(
				"is a profile of %s, not of the workspace %s: a profile's credentials are used only with its own host (drop Profile, or name its host)", ph, ws)}
		}
		return vals, ignored, nil
	}
	// A personal access token stands in for OAuthClient only: a scheme the string
	// chose for itself (a person's login, the CLI, federation) keeps its own way.
	token := profile.Values["token"]
	pat := token != "" && !given["OAuthClientId"] && profile.Values["client_id"] == "" &&
		(c.AuthScheme == "" || c.AuthScheme == AuthOAuthClient)
	source := "profile " + profile.Name + " of " + profile.File
	for _, k := range profileKeys {
		if k.key == "token" && !pat {
			continue
		}
		offer(k.prop, profile.Values[k.key], source)
	}
	if pat && (c.OAuthAccessToken != "" || !givenByString["OAuthAccessToken"]) && !given["InitiateOAuth"] && !given["OAuthExpiresIn"] {
		// A personal access token does not expire and cannot be refreshed.
		offer("InitiateOAuth", string(InitiateOff), source)
		offer("OAuthExpiresIn", "-1", source)
	}
	return vals, ignored, nil
}

// loadProfile reads the selected ~/.databrickscfg profile; nil when there is none.
func loadProfile(c *Config, getenv func(string) string) (*dbcfg.Profile, error) {
	p, err := dbcfg.Select(c.Profile, getenv, c.AuthScheme == AuthDatabricksCLI) // the CLI resolves its own profiles
	var pe *dbcfg.ProfileError
	if errors.As(err, &pe) {
		return nil, &ConfigError{Property: "Profile", Value: pe.Name, Err: pe.Err}
	}
	return p, err
}

// givenWorkspace is the workspace named before the profile is read: by the string,
// else by DATABRICKS_HOST ("" for none).
func givenWorkspace(c *Config, givenByString map[string]bool, vals []envValue) string {
	if givenByString["DatabricksInstance"] {
		return c.DatabricksInstance
	}
	for _, v := range vals {
		if v.prop == "DatabricksInstance" {
			return v.value
		}
	}
	return ""
}

// sameWorkspace reports whether two workspace hosts or URLs name the same workspace.
func sameWorkspace(a, b string) bool {
	norm := func(s string) string {
		if u, err := httpx.NormalizeWorkspace(s); err == nil {
			return u
		}
		return strings.ToLower(strings.TrimRight(strings.TrimSpace(s), "/"))
	}
	return norm(a) == norm(b)
}
