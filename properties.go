package lakebase

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/internal/connstr"
	"github.com/lakebase-go/lakebase/workspace"
)

// property is one connection property of Config (connstr.Prop): its name and
// aliases, whether it is a secret, how it is set and written back, and where else it
// may come from when the connection string leaves it out (env.go).
type property = connstr.Prop[Config]

// The kinds of property most of the table is made of.
var (
	strProp     = connstr.Str[Config]
	optIntProp  = connstr.OptInt[Config]
	secondsProp = connstr.Seconds[Config]
	boolProp    = connstr.Bool[Config]
)

var properties = []property{
	{
		Name: "AuthScheme",
		Set: func(c *Config, v string) error {
			for _, s := range []AuthScheme{AuthOAuthClient, AuthOAuthPKCE, AuthPassword, AuthDatabricksCLI, AuthOIDCFederation, AuthAzureAD, AuthAzureMSI, AuthTokenSource} {
				if strings.EqualFold(v, string(s)) {
					c.AuthScheme = s
					return nil
				}
			}
			return fmt.Errorf("must be one of OAuthClient, OAuthPKCE, Password, DatabricksCLI, OIDCFederation, AzureAD, AzureMSI")
		},
		Get: func(c *Config) string { return string(c.AuthScheme) },
	},
	strProp("DatabricksInstance", false, func(c *Config) *string { return &c.DatabricksInstance }, "Workspace").From("", "DATABRICKS_HOST", "host"),
	strProp("Instance", false, func(c *Config) *string { return &c.Instance }),
	strProp("Endpoint", false, func(c *Config) *string { return &c.Endpoint }),
	strProp("Server", false, func(c *Config) *string { return &c.Server }).From("PGHOST", "", ""),
	{
		Name: "Port",
		Set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("must be a port number from 1 to 65535")
			}
			c.Port = n
			return nil
		},
		Get:   func(c *Config) string { return strconv.Itoa(c.Port) },
		PgEnv: "PGPORT",
	},
	strProp("Database", false, func(c *Config) *string { return &c.Database }).From("PGDATABASE", "", ""),
	strProp("User", false, func(c *Config) *string { return &c.User }).From("PGUSER", "", ""),
	strProp("Password", true, func(c *Config) *string { return &c.Password }),
	strProp("LoginHost", false, func(c *Config) *string { return &c.LoginHost }),
	strProp("WorkspaceId", false, func(c *Config) *string { return &c.WorkspaceID }).From("", "DATABRICKS_WORKSPACE_ID", "workspace_id"),
	strProp("OAuthClientId", false, func(c *Config) *string { return &c.OAuthClientID }).From("", "DATABRICKS_CLIENT_ID", "client_id"),
	strProp("OAuthClientSecret", true, func(c *Config) *string { return &c.OAuthClientSecret }).From("", "DATABRICKS_CLIENT_SECRET", "client_secret"),
	strProp("Scope", false, func(c *Config) *string { return &c.Scope }),
	{
		Name: "InitiateOAuth",
		Set: func(c *Config, v string) error {
			for _, m := range []InitiateOAuth{InitiateOff, InitiateRefresh, InitiateGetAndRefresh} {
				if strings.EqualFold(v, string(m)) {
					c.InitiateOAuth = m
					return nil
				}
			}
			return fmt.Errorf("must be one of OFF, REFRESH, GETANDREFRESH")
		},
		Get: func(c *Config) string { return string(c.InitiateOAuth) },
	},
	strProp("OAuthSettingsLocation", false, func(c *Config) *string { return &c.OAuthSettingsLocation }),
	strProp("OAuthAccessToken", true, func(c *Config) *string { return &c.OAuthAccessToken }).From("", "", "token"),
	strProp("OAuthRefreshToken", true, func(c *Config) *string { return &c.OAuthRefreshToken }),
	{
		Name: "OAuthExpiresIn",
		Set: func(c *Config, v string) error {
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
		Get: func(c *Config) string {
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
		Name: "OAuthTokenTimestamp",
		Set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || n > 1<<53 {
				return fmt.Errorf("must be a Unix time in milliseconds")
			}
			c.OAuthTokenTimestamp = time.UnixMilli(n)
			return nil
		},
		Get: func(c *Config) string {
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
		Name: "SSLMode",
		Set: func(c *Config, v string) error {
			for _, m := range []SSLMode{SSLDisable, SSLAllow, SSLPrefer, SSLRequire, SSLVerifyCA, SSLVerifyFull} {
				if strings.EqualFold(v, string(m)) {
					c.SSLMode = m
					return nil
				}
			}
			return fmt.Errorf("must be one of require, verify-ca, verify-full (or disable, allow, prefer for a native password on a loopback host)")
		},
		Get:   func(c *Config) string { return string(c.SSLMode) },
		PgEnv: "PGSSLMODE",
	},
	strProp("SSLServerCert", false, func(c *Config) *string { return &c.SSLServerCert }),
	{
		Name: "Timeout",
		Set: func(c *Config, v string) error {
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
		Get: func(c *Config) string {
			if c.Timeout < 0 {
				return "0"
			}
			return strconv.FormatInt(int64(c.Timeout/time.Second), 10)
		},
	},
	strProp("ApplicationName", false, func(c *Config) *string { return &c.ApplicationName }).From("PGAPPNAME", "", ""),
	{
		Name: "Verbosity",
		Set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 5 {
				return fmt.Errorf("must be a number from 0 to 5")
			}
			c.Verbosity = n
			return nil
		},
		Get: func(c *Config) string { return strconv.Itoa(c.Verbosity) },
	},
	strProp("Logfile", false, func(c *Config) *string { return &c.Logfile }),
	strProp("Profile", false, func(c *Config) *string { return &c.Profile }),
	boolProp("Pooled", func(c *Config) *bool { return &c.Pooled }),
	{
		Name: "ReadOnly",
		Set: func(c *Config, v string) error {
			b, err := connstr.ParseBool(v)
			c.ReadOnly = b
			return err
		},
		Get: func(c *Config) string {
			if c.ReadOnly {
				return "true"
			}
			return ""
		},
	},
	strProp("OIDCTokenFile", false, func(c *Config) *string { return &c.OIDCTokenFile }).From("", "DATABRICKS_OIDC_TOKEN_FILEPATH", "databricks_id_token_filepath"),
	strProp("OIDCTokenEnv", false, func(c *Config) *string { return &c.OIDCTokenEnv }).From("", "DATABRICKS_OIDC_TOKEN_ENV", "oidc_token_env"),
	strProp("AzureTenant", false, func(c *Config) *string { return &c.AzureTenant }).From("", "ARM_TENANT_ID", ""),
	strProp("AzureAuthorityHost", false, func(c *Config) *string { return &c.AzureAuthorityHost }),
	strProp("AzureMSIEndpoint", false, func(c *Config) *string { return &c.AzureMSIEndpoint }),
	{
		Name: "QueryExecMode", Aliases: []string{"default_query_exec_mode"},
		Set: func(c *Config, v string) error {
			// pgx's names; "cache statement" (pgx's String form) and "cache-statement" too.
			v = strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(v))
			if _, ok := queryExecModes[v]; !ok && v != "" {
				return fmt.Errorf("must be one of cache_statement, cache_describe, describe_exec, exec, simple_protocol")
			}
			c.QueryExecMode = v
			return nil
		},
		Get: func(c *Config) string { return c.QueryExecMode },
	},
	optIntProp("StatementCacheCapacity", func(c *Config) **int { return &c.StatementCacheCapacity }, "statement_cache_capacity"),
	optIntProp("DescriptionCacheCapacity", func(c *Config) **int { return &c.DescriptionCacheCapacity }, "description_cache_capacity"),
	{
		Name: "AllowPreparedStatement",
		Set: func(c *Config, v string) error {
			b, err := connstr.ParseBoolDefault(v, true)
			c.DisablePreparedStatements = !b
			return err
		},
		Get: func(c *Config) string {
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
		Name: "MaxRows",
		Set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < -1 {
				return fmt.Errorf("must be a number of rows (0 or -1 for no limit)")
			}
			c.MaxRows = max(n, 0)
			return nil
		},
		Get: func(c *Config) string {
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
		Name: "UseSSL",
		Set: func(c *Config, v string) error {
			b, err := connstr.ParseBoolDefault(v, true)
			if err == nil && !b && c.SSLMode == "" {
				c.SSLMode = SSLDisable
			}
			return err
		},
		Get: func(*Config) string { return "" },
	},
	{
		Name: "UseConnectionPooling",
		Set: func(c *Config, v string) error {
			b, err := connstr.ParseBoolDefault(v, true)
			c.NoConnectionPooling = !b
			return err
		},
		Get: func(c *Config) string {
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
		Name: "CredentialClaims",
		Set: func(c *Config, v string) error {
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
		Get: func(c *Config) string { return c.CredentialClaims.String() },
	},
	{
		Name: "CredentialLifetime",
		Set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 300 || n > 3600 {
				return fmt.Errorf("must be a number of seconds from 300 to 3600 (the lifetimes Lakebase mints credentials for)")
			}
			c.CredentialLifetime = time.Duration(n) * time.Second
			return nil
		},
		Get: func(c *Config) string {
			if c.CredentialLifetime > 0 {
				return strconv.FormatInt(int64(c.CredentialLifetime/time.Second), 10)
			}
			return ""
		},
	},
}

// ignoredProperties are CData properties that are accepted for compatibility and have no effect.
var ignoredProperties = []string{
	"Visibility", "BrowsableSchemas", "IgnoredSchemas", "BrowsePartitions",
	"FetchResultSetMetadata", "InsertMode", "ThrowsKeyNotFound", "Other",
	"LogModules", "MaxLogFileSize", "MaxLogFileCount", "Location", "Tables", "Views",
	"SupportEnhancedSQL", "RTK", "CacheLocation",
}

// props finds the properties by name.
var props = connstr.NewTable(properties, ignoredProperties)

func isSecretKey(key string) bool {
	p, ok := props.Lookup(key)
	return ok && p.Secret
}

// IgnoredProperties lists the CData properties the driver accepts and ignores.
func IgnoredProperties() []string { return props.IgnoredNames() }

// setProperty sets one named property. Errors name the property and, for a secret, never the value.
// It returns the property's canonical name.
func (c *Config) setProperty(name, value string) (string, error) {
	if p, ok := props.Lookup(name); ok {
		if err := p.Set(c, value); err != nil {
			return "", &ConfigError{Property: p.Name, Value: value, Secret: p.Secret, Err: err}
		}
		return p.Name, nil
	}
	if canon, ok := props.Ignored(name); ok {
		if c.Ignored == nil {
			c.Ignored = map[string]string{}
		}
		c.Ignored[canon] = value
		return canon, nil
	}
	hint := props.Suggest(name)
	if canon, ok := libpqKeywords[strings.ToLower(strings.TrimSpace(name))]; ok && canon != "" {
		hint = fmt.Sprintf(" (libpq's %s is %s here)", strings.ToLower(strings.TrimSpace(name)), canon)
	}
	return "", &ConfigError{Property: name, Err: fmt.Errorf("unknown property%s", hint), unknown: true}
}

// libpqKeywords are libpq's connection keywords (as in "host=... dbname=..."), with
// the property the driver calls each one, when it has one ("" for none).
var libpqKeywords = map[string]string{
	"host": "Server", "hostaddr": "Server", "port": "Port", "dbname": "Database", "user": "User",
	"password": "Password", "passfile": "", "sslmode": "SSLMode", "sslrootcert": "SSLServerCert",
	"sslcert": "", "sslkey": "", "application_name": "ApplicationName", "connect_timeout": "Timeout",
	"options": "", "service": "", "target_session_attrs": "", "channel_binding": "", "client_encoding": "",
	"keepalives": "", "gssencmode": "", "krbsrvname": "", "sslpassword": "", "requiressl": "",
}
