package lakebase

import (
	"bufio"
	"fmt"
	"os"
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
