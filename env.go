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

// The variables and profile keys of each property are in the property table
// (property.pgEnv, env, profile); these lists are drawn from it, in its order.
var pgEnv, databricksEnv, profileKeys = environmentSources()

type envSource struct{ env, prop string }

type profileSource struct{ key, prop string }

func environmentSources() (pg, databricks []envSource, profileKeys []profileSource) {
	for _, p := range properties {
		if p.pgEnv != "" {
			pg = append(pg, envSource{p.pgEnv, p.name})
		}
		if p.env != "" {
			databricks = append(databricks, envSource{p.env, p.name})
		}
		if p.profile != "" {
			profileKeys = append(profileKeys, profileSource{p.profile, p.name})
		}
	}
	return pg, databricks, profileKeys
}

type profile struct {
	name, file string
	values     map[string]string
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
	// A personal access token stands in for OAuthClient only: a scheme the string
	// chose for itself (a person's login, the CLI, federation) keeps its own way.
	token := profile.values["token"]
	pat := token != "" && !given["OAuthClientId"] && profile.values["client_id"] == "" &&
		(c.AuthScheme == "" || c.AuthScheme == AuthOAuthClient)
	source := "profile " + profile.name + " of " + profile.file
	for _, k := range profileKeys {
		if k.key == "token" && !pat {
			continue
		}
		offer(k.prop, profile.values[k.key], source)
	}
	if pat && (c.OAuthAccessToken != "" || !givenByString["OAuthAccessToken"]) && !given["InitiateOAuth"] && !given["OAuthExpiresIn"] {
		// A personal access token does not expire and cannot be refreshed.
		offer("InitiateOAuth", string(InitiateOff), source)
		offer("OAuthExpiresIn", "-1", source)
	}
	return vals, ignored, nil
}

// loadProfile reads the selected ~/.databrickscfg profile; nil when there is none.
func loadProfile(c *Config, getenv func(string) string) (*profile, error) {
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
