package lakebase

import (
	"errors"

	"github.com/lakebase-go/lakebase/internal/textdist"
	"github.com/lakebase-go/lakebase/workspace"

	"fmt"
	"os"
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

// Prefixes accepted in front of a connection string.
var dsnPrefixes = []string{"jdbc:cdata:lakebase:", "jdbc:lakebase:"}

// ParseDSN parses a CData-style connection string ("Name=Value;Name=Value"), or the
// lakebase:// URL form, applies defaults and validates the result.
//
// Properties the string leaves out are taken from the environment where Databricks
// and Postgres conventions say so (PGHOST, DATABRICKS_HOST, ~/.databrickscfg, ...;
// see the README); the connection string always wins.
func ParseDSN(dsn string) (*Config, error) {
	return parseDSN(dsn, os.Getenv)
}

func parseDSN(dsn string, getenv func(string) string) (*Config, error) {
	c, err := parseDSNNoDefaults(dsn, getenv)
	if err != nil {
		return nil, err
	}
	if err := c.setDefaults(); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDSNNoDefaults parses dsn and applies the environment, leaving empty the
// properties that have defaults (NewConnector decides some of them from its options).
func parseDSNNoDefaults(dsn string, getenv func(string) string) (*Config, error) {
	c, given, err := parseDSNNoValidate(dsn)
	if err != nil {
		return nil, err
	}
	if err := c.applyEnvironment(given, getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDSNNoValidate parses dsn; given holds the canonical names it set.
func parseDSNNoValidate(dsn string) (c *Config, given map[string]bool, err error) {
	trimmed := strings.TrimSpace(dsn)
	if err := refuseForeignForm(trimmed); err != nil {
		return nil, nil, err
	}
	var pairs [][2]string
	if len(trimmed) >= len(urlScheme) && strings.EqualFold(trimmed[:len(urlScheme)], urlScheme) {
		pairs, err = urlPairs(trimmed)
	} else {
		pairs, err = splitPairs(trimmed)
	}
	if err != nil {
		return nil, nil, err
	}
	c, given = &Config{}, map[string]bool{}
	for i, kv := range pairs {
		name, err := c.setProperty(kv[0], kv[1])
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) && ce.unknown {
				// An unknown name is quoted back only when it looks like a name and does
				// not follow a secret (unless it is a near miss of a property name): after
				// Password=ab;CD=x, "CD" may be the rest of the password (an unquoted ';').
				_, nearMiss := clearlyPropertyName(kv[0]) // a typo of a property, not a fragment of a secret
				if i > 0 && isSecretKey(pairs[i-1][0]) && !nearMiss {
					return nil, nil, &ConfigError{Err: fmt.Errorf("pair %d is not a known property (not shown: it follows the secret %s, whose value may hold an unquoted ';'; quote it: %s='...', doubling any ' inside)",
						i+1, canonicalName(pairs[i-1][0]), canonicalName(pairs[i-1][0]))}
				}
				if !looksLikeName(kv[0]) {
					return nil, nil, &ConfigError{Err: fmt.Errorf("pair %d has a name that is not a property name (not shown); write Name=Value pairs separated by ';'", i+1)}
				}
			}
			return nil, nil, err
		}
		given[name] = true
	}
	return c, given, nil
}

// canonicalName is the canonical spelling of a known property name.
func canonicalName(name string) string {
	if p, ok := propByKey[normalizeKey(name)]; ok {
		return p.name
	}
	return name
}

// looksLikeName reports whether s could be a property name someone typed: letters,
// digits, spaces, '_', '-' and '.', starting with a letter, at most 64 bytes.
func looksLikeName(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// acceptedForms names the connection-string forms this driver reads, for messages.
const acceptedForms = "this driver reads CData pairs (AuthScheme=OAuthClient;DatabricksInstance=...;Endpoint=...) or a lakebase:// URL; " +
	"for a native Postgres role use AuthScheme=Password;Server=<host>;User=<role>;Password=<password>"

// libpqKeywords are libpq's connection keywords (as in "host=... dbname=..."), with
// the property this driver calls each one, when it has one.
var libpqKeywords = map[string]string{
	"host": "Server", "hostaddr": "Server", "port": "Port", "dbname": "Database", "user": "User",
	"password": "Password", "passfile": "", "sslmode": "SSLMode", "sslrootcert": "SSLServerCert",
	"sslcert": "", "sslkey": "", "application_name": "ApplicationName", "connect_timeout": "Timeout",
	"options": "", "service": "", "target_session_attrs": "", "channel_binding": "", "client_encoding": "",
	"keepalives": "", "gssencmode": "", "krbsrvname": "", "sslpassword": "", "requiressl": "",
}

// refuseForeignForm refuses, without quoting any of its text (it may hold a
// password), a PostgreSQL URL (postgres://, postgresql://) or a libpq key=value
// string pasted where a lakebase connection string belongs.
func refuseForeignForm(s string) error {
	lower := strings.ToLower(s)
	for _, p := range []string{"postgres://", "postgresql://"} {
		if strings.HasPrefix(lower, p) {
			return &ConfigError{Err: fmt.Errorf("this is a PostgreSQL URL (%s...), not shown since it may hold a password; %s", p, acceptedForms)}
		}
	}
	if strings.Contains(s, ";") || strings.HasPrefix(lower, urlScheme) {
		return nil
	}
	fields := strings.Fields(s)
	n := 0
	for i, f := range fields {
		name, _, ok := strings.Cut(f, "=")
		if _, known := libpqKeywords[strings.ToLower(strings.TrimSpace(name))]; ok && known {
			n++
		} else if i == 0 {
			return nil
		}
	}
	if n >= 2 {
		return &ConfigError{Err: fmt.Errorf("this is a libpq connection string (host=... dbname=...), not shown since it may hold a password; %s", acceptedForms)}
	}
	return nil
}

// splitPairs splits a CData connection string into name/value pairs.
func splitPairs(s string) ([][2]string, error) {
	for _, p := range dsnPrefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			break
		}
	}
	var pairs [][2]string
	i := 0
	for pair := 1; i < len(s); pair++ {
		// name
		eq := -1
		j := i
		for ; j < len(s) && s[j] != ';'; j++ {
			if s[j] == '=' {
				eq = j
				break
			}
		}
		if eq < 0 {
			seg := strings.TrimSpace(s[i:j])
			if seg != "" {
				// The segment may be the tail of a value that held ';' unquoted (a
				// password), or a secret typed with the wrong separator: only a segment
				// that is clearly a property name is quoted back.
				if name, ok := clearlyPropertyName(seg); ok {
					return nil, &ConfigError{Property: name, Err: fmt.Errorf("has no '=' (write Name=Value pairs separated by ';')")}
				}
				return nil, &ConfigError{Err: fmt.Errorf("pair %d (at offset %d) has no '=': write Name=Value pairs separated by ';', and quote a value that holds ';' with ' or \"", pair, i)}
			}
			i = j + 1
			continue
		}
		name := strings.TrimSpace(s[i:eq])
		if name == "" {
			return nil, &ConfigError{Err: fmt.Errorf("a pair at offset %d has an empty name", i)}
		}
		// value
		k := eq + 1
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		var value string
		if k < len(s) && (s[k] == '\'' || s[k] == '"') {
			q := s[k]
			var b strings.Builder
			k++
			closed := false
			for k < len(s) {
				if s[k] == q {
					if k+1 < len(s) && s[k+1] == q {
						b.WriteByte(q)
						k += 2
						continue
					}
					closed = true
					k++
					break
				}
				b.WriteByte(s[k])
				k++
			}
			if !closed {
				return nil, &ConfigError{Property: name, Secret: isSecretKey(name), Err: fmt.Errorf("has an unterminated quoted value")}
			}
			for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
				k++
			}
			if k < len(s) && s[k] != ';' {
				return nil, &ConfigError{Property: name, Secret: isSecretKey(name), Err: fmt.Errorf("has text after the closing quote")}
			}
			value = b.String()
		} else {
			end := strings.IndexByte(s[k:], ';')
			if end < 0 {
				end = len(s)
			} else {
				end += k
			}
			value = strings.TrimSpace(s[k:end])
			k = end
		}
		pairs = append(pairs, [2]string{name, value})
		i = k + 1
	}
	return pairs, nil
}

// clearlyPropertyName reports whether seg is a property name (known, or within a
// small edit distance of one), and returns it, canonical when known.
func clearlyPropertyName(seg string) (string, bool) {
	for _, r := range seg {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_') {
			return "", false
		}
	}
	key := normalizeKey(seg)
	if p, ok := propByKey[key]; ok {
		return p.name, true
	}
	if n, ok := ignoredByKey[key]; ok {
		return n, true
	}
	for i := range properties {
		if textdist.Levenshtein(key, normalizeKey(properties[i].name)) <= 2 {
			return seg, true
		}
	}
	return "", false
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

const redacted = "********"

// quoteValue quotes a value when it holds ';', a quote or edge whitespace.
func quoteValue(v string) string {
	if v == "" {
		return "''"
	}
	if !strings.ContainsAny(v, ";'\"") && strings.TrimSpace(v) == v {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
