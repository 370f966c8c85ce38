package lakebase

import (
	"github.com/lakebase-go/lakebase/internal/textdist"
	"github.com/lakebase-go/lakebase/workspace"

	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// property describes one connection property: its name and aliases, whether it is
// a secret, how it is set and written back, and where else it may come from when the
// connection string leaves it out (see the environment conventions in env.go).
type property struct {
	name    string
	aliases []string
	secret  bool
	set     func(c *Config, v string) error
	get     func(c *Config) string // "" = not written by FormatDSN
	// pgEnv is the Postgres variable (Databricks Apps inject them), env the
	// Databricks variable, profile the ~/.databrickscfg key that fill it.
	pgEnv, env, profile string
}

// from names where else p may come from: a PG* variable, a DATABRICKS_* (or ARM_*)
// variable, a ~/.databrickscfg key ("" for none).
func (p property) from(pgEnv, env, profile string) property {
	p.pgEnv, p.env, p.profile = pgEnv, env, profile
	return p
}

func strProp(name string, secret bool, field func(*Config) *string, aliases ...string) property {
	return property{
		name: name, aliases: aliases, secret: secret,
		set: func(c *Config, v string) error { *field(c) = v; return nil },
		get: func(c *Config) string { return *field(c) },
	}
}

var properties = []property{
	{
		name: "AuthScheme",
		set: func(c *Config, v string) error {
			for _, s := range []AuthScheme{AuthOAuthClient, AuthOAuthPKCE, AuthPassword, AuthDatabricksCLI, AuthOIDCFederation, AuthAzureAD, AuthAzureMSI, AuthTokenSource} {
				if strings.EqualFold(v, string(s)) {
					c.AuthScheme = s
					return nil
				}
			}
			return fmt.Errorf("must be one of OAuthClient, OAuthPKCE, Password, DatabricksCLI, OIDCFederation, AzureAD, AzureMSI")
		},
		get: func(c *Config) string { return string(c.AuthScheme) },
	},
	strProp("DatabricksInstance", false, func(c *Config) *string { return &c.DatabricksInstance }, "Workspace").from("", "DATABRICKS_HOST", "host"),
	strProp("Instance", false, func(c *Config) *string { return &c.Instance }),
	strProp("Endpoint", false, func(c *Config) *string { return &c.Endpoint }),
	strProp("Server", false, func(c *Config) *string { return &c.Server }).from("PGHOST", "", ""),
	{
		name: "Port",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("must be a port number from 1 to 65535")
			}
			c.Port = n
			return nil
		},
		get:   func(c *Config) string { return strconv.Itoa(c.Port) },
		pgEnv: "PGPORT",
	},
	strProp("Database", false, func(c *Config) *string { return &c.Database }).from("PGDATABASE", "", ""),
	strProp("User", false, func(c *Config) *string { return &c.User }).from("PGUSER", "", ""),
	strProp("Password", true, func(c *Config) *string { return &c.Password }),
	strProp("LoginHost", false, func(c *Config) *string { return &c.LoginHost }),
	strProp("WorkspaceId", false, func(c *Config) *string { return &c.WorkspaceID }).from("", "DATABRICKS_WORKSPACE_ID", "workspace_id"),
	strProp("OAuthClientId", false, func(c *Config) *string { return &c.OAuthClientID }).from("", "DATABRICKS_CLIENT_ID", "client_id"),
	strProp("OAuthClientSecret", true, func(c *Config) *string { return &c.OAuthClientSecret }).from("", "DATABRICKS_CLIENT_SECRET", "client_secret"),
	strProp("Scope", false, func(c *Config) *string { return &c.Scope }),
	{
		name: "InitiateOAuth",
		set: func(c *Config, v string) error {
			for _, m := range []InitiateOAuth{InitiateOff, InitiateRefresh, InitiateGetAndRefresh} {
				if strings.EqualFold(v, string(m)) {
					c.InitiateOAuth = m
					return nil
				}
			}
			return fmt.Errorf("must be one of OFF, REFRESH, GETANDREFRESH")
		},
		get: func(c *Config) string { return string(c.InitiateOAuth) },
	},
	strProp("OAuthSettingsLocation", false, func(c *Config) *string { return &c.OAuthSettingsLocation }),
	strProp("OAuthAccessToken", true, func(c *Config) *string { return &c.OAuthAccessToken }).from("", "", "token"),
	strProp("OAuthRefreshToken", true, func(c *Config) *string { return &c.OAuthRefreshToken }),
	{
		name: "OAuthExpiresIn",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < -1 || n > 100*365*24*3600 {
				return fmt.Errorf("must be a number of seconds (-1 for never)")
			}
			if n == -1 {
				c.OAuthExpiresIn = -1
			} else {
				c.OAuthExpiresIn = time.Duration(n) * time.Second
			}
			return nil
		},
		get: func(c *Config) string {
			switch {
			case c.OAuthExpiresIn == 0:
				return ""
			case c.OAuthExpiresIn < 0:
				return "-1"
			}
			return strconv.FormatInt(int64(c.OAuthExpiresIn/time.Second), 10)
		},
	},
	{
		name: "OAuthTokenTimestamp",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || n > 1<<53 {
				return fmt.Errorf("must be a Unix time in milliseconds")
			}
			c.OAuthTokenTimestamp = time.UnixMilli(n)
			return nil
		},
		get: func(c *Config) string {
			if c.OAuthTokenTimestamp.IsZero() {
				return ""
			}
			return strconv.FormatInt(c.OAuthTokenTimestamp.UnixMilli(), 10)
		},
	},
	strProp("OAuthVerifier", true, func(c *Config) *string { return &c.OAuthVerifier }),
	strProp("CallbackURL", false, func(c *Config) *string { return &c.CallbackURL }),
	strProp("OAuthAuthorizationURL", false, func(c *Config) *string { return &c.OAuthAuthorizationURL }),
	strProp("OAuthAccessTokenURL", false, func(c *Config) *string { return &c.OAuthAccessTokenURL }),
	{
		name: "SSLMode",
		set: func(c *Config, v string) error {
			for _, m := range []SSLMode{SSLDisable, SSLAllow, SSLPrefer, SSLRequire, SSLVerifyCA, SSLVerifyFull} {
				if strings.EqualFold(v, string(m)) {
					c.SSLMode = m
					return nil
				}
			}
			return fmt.Errorf("must be one of require, verify-ca, verify-full (or disable, allow, prefer for a native password on a loopback host)")
		},
		get:   func(c *Config) string { return string(c.SSLMode) },
		pgEnv: "PGSSLMODE",
	},
	strProp("SSLServerCert", false, func(c *Config) *string { return &c.SSLServerCert }),
	{
		name: "Timeout",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 24*3600 {
				return fmt.Errorf("must be a number of seconds from 0 (no limit) to 86400")
			}
			c.Timeout = time.Duration(n) * time.Second
			if n == 0 {
				c.Timeout = NoTimeout
			}
			return nil
		},
		get: func(c *Config) string {
			if c.Timeout < 0 {
				return "0"
			}
			return strconv.FormatInt(int64(c.Timeout/time.Second), 10)
		},
	},
	strProp("ApplicationName", false, func(c *Config) *string { return &c.ApplicationName }).from("PGAPPNAME", "", ""),
	{
		name: "Verbosity",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 5 {
				return fmt.Errorf("must be a number from 0 to 5")
			}
			c.Verbosity = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(c.Verbosity) },
	},
	strProp("Logfile", false, func(c *Config) *string { return &c.Logfile }),
	strProp("Profile", false, func(c *Config) *string { return &c.Profile }),
	boolProp("Pooled", func(c *Config) *bool { return &c.Pooled }),
	{
		name: "ReadOnly",
		set: func(c *Config, v string) error {
			b, err := parseBool(v)
			c.ReadOnly = b
			return err
		},
		get: func(c *Config) string {
			if c.ReadOnly {
				return "true"
			}
			return ""
		},
	},
	strProp("OIDCTokenFile", false, func(c *Config) *string { return &c.OIDCTokenFile }).from("", "DATABRICKS_OIDC_TOKEN_FILEPATH", "databricks_id_token_filepath"),
	strProp("OIDCTokenEnv", false, func(c *Config) *string { return &c.OIDCTokenEnv }).from("", "DATABRICKS_OIDC_TOKEN_ENV", "oidc_token_env"),
	strProp("AzureTenant", false, func(c *Config) *string { return &c.AzureTenant }).from("", "ARM_TENANT_ID", ""),
	strProp("AzureAuthorityHost", false, func(c *Config) *string { return &c.AzureAuthorityHost }),
	strProp("AzureMSIEndpoint", false, func(c *Config) *string { return &c.AzureMSIEndpoint }),
	{
		name: "QueryExecMode", aliases: []string{"default_query_exec_mode"},
		set: func(c *Config, v string) error {
			// pgx's names; "cache statement" (pgx's String form) and "cache-statement" too.
			v = strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(v))
			if _, ok := queryExecModes[v]; !ok && v != "" {
				return fmt.Errorf("must be one of cache_statement, cache_describe, describe_exec, exec, simple_protocol")
			}
			c.QueryExecMode = v
			return nil
		},
		get: func(c *Config) string { return c.QueryExecMode },
	},
	optIntProp("StatementCacheCapacity", func(c *Config) **int { return &c.StatementCacheCapacity }, "statement_cache_capacity"),
	optIntProp("DescriptionCacheCapacity", func(c *Config) **int { return &c.DescriptionCacheCapacity }, "description_cache_capacity"),
	{
		name: "AllowPreparedStatement",
		set: func(c *Config, v string) error {
			b, err := parseBoolDefault(v, true)
			c.DisablePreparedStatements = !b
			return err
		},
		get: func(c *Config) string {
			if c.DisablePreparedStatements {
				return "false"
			}
			return ""
		},
	},
	strProp("TimeZone", false, func(c *Config) *string { return &c.TimeZone }),
	strProp("SessionRole", false, func(c *Config) *string { return &c.SessionRole }),
	strProp("Project", false, func(c *Config) *string { return &c.Project }),
	strProp("Branch", false, func(c *Config) *string { return &c.Branch }),
	{
		name: "MaxRows",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < -1 {
				return fmt.Errorf("must be a number of rows (0 or -1 for no limit)")
			}
			c.MaxRows = max(n, 0)
			return nil
		},
		get: func(c *Config) string {
			if c.MaxRows <= 0 {
				return ""
			}
			return strconv.Itoa(c.MaxRows)
		},
	},
	boolProp("ConnectOnOpen", func(c *Config) *bool { return &c.ConnectOnOpen }),
	{
		// CData's switch for TLS: true is what SSLMode already requires; false asks for
		// plain text, which SSLMode=disable expresses (and validation refuses whenever a
		// token is the password). Not written back: SSLMode carries it.
		name: "UseSSL",
		set: func(c *Config, v string) error {
			b, err := parseBoolDefault(v, true)
			if err == nil && !b && c.SSLMode == "" {
				c.SSLMode = SSLDisable
			}
			return err
		},
		get: func(*Config) string { return "" },
	},
	{
		name: "UseConnectionPooling",
		set: func(c *Config, v string) error {
			b, err := parseBoolDefault(v, true)
			c.NoConnectionPooling = !b
			return err
		},
		get: func(c *Config) string {
			if c.NoConnectionPooling {
				return "false"
			}
			return ""
		},
	},
	optIntProp("PoolMaxSize", func(c *Config) **int { return &c.PoolMaxSize }),
	optIntProp("PoolMinSize", func(c *Config) **int { return &c.PoolMinSize }),
	secondsProp("PoolIdleTimeout", func(c *Config) *time.Duration { return &c.PoolIdleTimeout }),
	secondsProp("PoolMaxLifetime", func(c *Config) *time.Duration { return &c.PoolMaxLifetime }),
	secondsProp("PoolWaitTime", func(c *Config) *time.Duration { return &c.PoolWaitTime }),
	{
		name: "CredentialClaims",
		set: func(c *Config, v string) error {
			if strings.TrimSpace(v) == "" {
				c.CredentialClaims = nil
				return nil
			}
			cl, err := workspace.ParseCredentialClaims(v)
			if err != nil {
				return err
			}
			c.CredentialClaims = cl
			return nil
		},
		get: func(c *Config) string { return c.CredentialClaims.String() },
	},
	{
		name: "CredentialLifetime",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 300 || n > 3600 {
				return fmt.Errorf("must be a number of seconds from 300 to 3600 (the lifetimes Lakebase mints credentials for)")
			}
			c.CredentialLifetime = time.Duration(n) * time.Second
			return nil
		},
		get: func(c *Config) string {
			if c.CredentialLifetime > 0 {
				return strconv.FormatInt(int64(c.CredentialLifetime/time.Second), 10)
			}
			return ""
		},
	},
}

// optIntProp is a property holding a count from 0 up; unset is nil.
func optIntProp(name string, field func(*Config) **int, aliases ...string) property {
	return property{
		name: name, aliases: aliases,
		set: func(c *Config, v string) error {
			if v == "" {
				*field(c) = nil
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1<<20 {
				return fmt.Errorf("must be a number from 0 to %d", 1<<20)
			}
			*field(c) = &n
			return nil
		},
		get: func(c *Config) string {
			if p := *field(c); p != nil {
				return strconv.Itoa(*p)
			}
			return ""
		},
	}
}

// secondsProp is a property holding a number of seconds; 0 is unset.
func secondsProp(name string, field func(*Config) *time.Duration) property {
	return property{
		name: name,
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 24*3600 {
				return fmt.Errorf("must be a number of seconds from 0 to 86400")
			}
			*field(c) = time.Duration(n) * time.Second
			return nil
		},
		get: func(c *Config) string {
			if d := *field(c); d > 0 {
				return strconv.FormatInt(int64(d/time.Second), 10)
			}
			return ""
		},
	}
}

// boolProp is a true/false property whose default is false.
func boolProp(name string, field func(*Config) *bool) property {
	return property{
		name: name,
		set: func(c *Config, v string) error {
			b, err := parseBool(v)
			*field(c) = b
			return err
		},
		get: func(c *Config) string {
			if *field(c) {
				return "true"
			}
			return ""
		},
	}
}

// parseBoolDefault is parseBool with def for an empty value.
func parseBoolDefault(v string, def bool) (bool, error) {
	if v == "" {
		return def, nil
	}
	return parseBool(v)
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, fmt.Errorf("must be true or false")
}

// ignoredProperties are CData properties that are accepted for compatibility and have no effect.
var ignoredProperties = []string{
	"Visibility", "BrowsableSchemas", "IgnoredSchemas", "BrowsePartitions",
	"FetchResultSetMetadata", "InsertMode", "ThrowsKeyNotFound", "Other",
	"LogModules", "MaxLogFileSize", "MaxLogFileCount", "Location", "Tables", "Views",
	"SupportEnhancedSQL", "RTK", "CacheLocation",
}

var (
	propByKey    = map[string]*property{}
	ignoredByKey = map[string]string{}
)

func init() {
	for i := range properties {
		p := &properties[i]
		propByKey[normalizeKey(p.name)] = p
		for _, a := range p.aliases {
			propByKey[normalizeKey(a)] = p
		}
	}
	for _, n := range ignoredProperties {
		ignoredByKey[normalizeKey(n)] = n
	}
}

// normalizeKey folds case and removes spaces: "Auth Scheme" and "authscheme" are the same name.
func normalizeKey(s string) string {
	s = strings.ToLower(s)
	if strings.ContainsAny(s, " \t") {
		s = strings.Join(strings.Fields(s), "")
	}
	return s
}

func isSecretKey(key string) bool {
	p, ok := propByKey[normalizeKey(key)]
	return ok && p.secret
}

// IgnoredProperties lists the CData properties the driver accepts and ignores.
func IgnoredProperties() []string {
	out := append([]string(nil), ignoredProperties...)
	sort.Strings(out)
	return out
}

// setProperty sets one named property. Errors name the property and, for a secret, never the value.
// It returns the property's canonical name.
func (c *Config) setProperty(name, value string) (string, error) {
	key := normalizeKey(name)
	if p, ok := propByKey[key]; ok {
		if err := p.set(c, value); err != nil {
			return "", &ConfigError{Property: p.name, Value: value, Secret: p.secret, Err: err}
		}
		return p.name, nil
	}
	if canon, ok := ignoredByKey[key]; ok {
		if c.Ignored == nil {
			c.Ignored = map[string]string{}
		}
		c.Ignored[canon] = value
		return canon, nil
	}
	hint := suggest(key)
	if canon, ok := libpqKeywords[strings.ToLower(strings.TrimSpace(name))]; ok && canon != "" {
		hint = fmt.Sprintf(" (libpq's %s is %s here)", strings.ToLower(strings.TrimSpace(name)), canon)
	}
	return "", &ConfigError{Property: name, Err: fmt.Errorf("unknown property%s", hint), unknown: true}
}

// suggest returns ` (did you mean "X"?)` for the known name nearest to key.
func suggest(key string) string {
	best, bestD := "", 1<<30
	consider := func(canon string) {
		d := textdist.Levenshtein(key, normalizeKey(canon))
		if d < bestD || (d == bestD && canon < best) {
			best, bestD = canon, d
		}
	}
	for i := range properties {
		consider(properties[i].name)
		for _, a := range properties[i].aliases {
			consider(a)
		}
	}
	if best == "" || bestD > max(3, len(key)/2) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// libpqKeywords are libpq's connection keywords (as in "host=... dbname=..."), with
// the property this driver calls each one, when it has one.
var libpqKeywords = map[string]string{
	"host": "Server", "hostaddr": "Server", "port": "Port", "dbname": "Database", "user": "User",
	"password": "Password", "passfile": "", "sslmode": "SSLMode", "sslrootcert": "SSLServerCert",
	"sslcert": "", "sslkey": "", "application_name": "ApplicationName", "connect_timeout": "Timeout",
	"options": "", "service": "", "target_session_attrs": "", "channel_binding": "", "client_encoding": "",
	"keepalives": "", "gssencmode": "", "krbsrvname": "", "sslpassword": "", "requiressl": "",
}
