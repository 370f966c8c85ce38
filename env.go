package lakebase

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
//     token (a personal access token) fills OAuthAccessToken, never expiring.
//
// Only these variables are read; nothing else of the environment (PGPASSWORD,
// PGOPTIONS, .pgpass, service files) changes a connection. A Config built by hand and
// passed to NewConnectorFromConfig takes nothing from the environment.

var pgEnv = []struct{ env, prop string }{
	{"PGHOST", "Server"}, {"PGPORT", "Port"}, {"PGDATABASE", "Database"},
	{"PGUSER", "User"}, {"PGSSLMODE", "SSLMode"}, {"PGAPPNAME", "ApplicationName"},
}

var databricksEnv = []struct{ env, prop string }{
	{"DATABRICKS_HOST", "DatabricksInstance"}, {"DATABRICKS_CLIENT_ID", "OAuthClientId"},
	{"DATABRICKS_CLIENT_SECRET", "OAuthClientSecret"},
	{"DATABRICKS_OIDC_TOKEN_FILEPATH", "OIDCTokenFile"}, {"DATABRICKS_OIDC_TOKEN_ENV", "OIDCTokenEnv"},
	{"ARM_TENANT_ID", "AzureTenant"},
}

var profileKeys = []struct{ key, prop string }{
	{"host", "DatabricksInstance"}, {"client_id", "OAuthClientId"}, {"client_secret", "OAuthClientSecret"},
	{"token", "OAuthAccessToken"},
	{"databricks_id_token_filepath", "OIDCTokenFile"}, {"oidc_token_env", "OIDCTokenEnv"},
}

// applyEnvironment fills the properties the connection string did not give.
func (c *Config) applyEnvironment(given map[string]bool, getenv func(string) string) error {
	fill := func(prop, value, source string) error {
		if given[prop] || value == "" {
			return nil
		}
		if _, err := c.setProperty(prop, value); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Err = fmt.Errorf("%w (from %s)", ce.Err, source)
			}
			return err
		}
		given[prop] = true
		return nil
	}
	// LAKEBASE_ENDPOINT (Databricks Apps, the official Node client) names the endpoint
	// when the string names no database.
	if !given["Endpoint"] && !given["Instance"] && !given["Project"] && getenv("LAKEBASE_ENDPOINT") != "" {
		if err := fill("Endpoint", getenv("LAKEBASE_ENDPOINT"), "LAKEBASE_ENDPOINT"); err != nil {
			return err
		}
	}
	for _, e := range pgEnv {
		if (e.prop == "Server" || e.prop == "Port") && (given["Endpoint"] || given["Instance"] || given["Project"]) && getenv(e.env) != "" {
			// The database is named: its host comes from the workspace. A stray PGHOST
			// must not send the credential elsewhere.
			c.envIgnored = append(c.envIgnored, e.env)
			continue
		}
		if err := fill(e.prop, getenv(e.env), e.env); err != nil {
			return err
		}
	}
	for _, e := range databricksEnv {
		if err := fill(e.prop, getenv(e.env), e.env); err != nil {
			return err
		}
	}
	profile, err := c.loadProfile(given, getenv)
	if err != nil {
		return err
	}
	if profile == nil {
		return nil
	}
	// A personal access token stands in for OAuthClient only: a scheme the string
	// chose for itself (a person's login, the CLI, federation) keeps its own way.
	pat := profile.values["token"] != "" && !given["OAuthClientId"] && profile.values["client_id"] == "" &&
		(c.AuthScheme == "" || c.AuthScheme == AuthOAuthClient)
	for _, k := range profileKeys {
		if k.key == "token" && !pat {
			continue
		}
		if err := fill(k.prop, profile.values[k.key], "profile "+profile.name+" of "+profile.file); err != nil {
			return err
		}
	}
	if pat && c.OAuthAccessToken != "" && !given["InitiateOAuth"] && !given["OAuthExpiresIn"] {
		// A personal access token does not expire and cannot be refreshed.
		c.InitiateOAuth = InitiateOff
		c.OAuthExpiresIn = -1
	}
	return nil
}

type profile struct {
	name, file string
	values     map[string]string
}

// loadProfile reads the selected ~/.databrickscfg profile; nil when there is none.
func (c *Config) loadProfile(given map[string]bool, getenv func(string) string) (*profile, error) {
	file := getenv("DATABRICKS_CONFIG_FILE")
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil
		}
		file = filepath.Join(home, ".databrickscfg")
	} else if strings.HasPrefix(file, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			file = filepath.Join(home, file[2:])
		}
	}
	name, explicit := c.Profile, c.Profile != ""
	if !explicit {
		if name = getenv("DATABRICKS_CONFIG_PROFILE"); name != "" {
			explicit = true
		}
	}
	sections, err := readINI(file)
	if errors.Is(err, os.ErrNotExist) {
		if explicit && c.AuthScheme != AuthDatabricksCLI { // the CLI resolves its own profiles
			return nil, &ConfigError{Property: "Profile", Value: name, Err: fmt.Errorf("cannot be used: %s does not exist", file)}
		}
		return nil, nil
	}
	if err != nil {
		return nil, &ConfigError{Property: "Profile", Err: fmt.Errorf("cannot read %s: %w", file, err)}
	}
	if !explicit {
		name = sections["__settings__"]["default_profile"]
		if name == "" {
			name = "DEFAULT"
		}
		if _, ok := sections[name]; !ok {
			return nil, nil
		}
	}
	vals, ok := sections[name]
	if !ok && c.AuthScheme == AuthDatabricksCLI {
		return nil, nil
	}
	if !ok || name == "__settings__" {
		return nil, &ConfigError{Property: "Profile", Value: name, Err: fmt.Errorf("is not a profile of %s", file)}
	}
	return &profile{name: name, file: file, values: vals}, nil
}

// readINI reads a .databrickscfg: [section] headers and key = value lines; ; and #
// start comments.
func readINI(path string) (map[string]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' && strings.HasSuffix(line, "]") {
			name := strings.TrimSpace(line[1 : len(line)-1])
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			cur = out[name]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || cur == nil {
			return nil, fmt.Errorf("line %d is not a [section] or key = value", n)
		}
		cur[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return out, sc.Err()
}
