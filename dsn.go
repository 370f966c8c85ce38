package lakebase

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AuthScheme selects how the driver obtains the Postgres password.
type AuthScheme string

// The authentication schemes.
const (
	// AuthOAuthClient uses the OAuth client-credentials grant of a service principal
	// (OAuthClientId and OAuthClientSecret). It is the default.
	AuthOAuthClient AuthScheme = "OAuthClient"
	// AuthOAuthPKCE uses the authorization-code grant with PKCE for a person.
	AuthOAuthPKCE AuthScheme = "OAuthPKCE"
	// AuthPassword uses a native Postgres password (the Password property).
	AuthPassword AuthScheme = "Password"
	// AuthDatabricksCLI reuses the login of the Databricks CLI (databricks auth login):
	// it runs "databricks auth token" and uses the token it prints.
	AuthDatabricksCLI AuthScheme = "DatabricksCLI"
	// AuthOIDCFederation exchanges a workload identity token (a JWT from a file or an
	// environment variable: GitHub Actions, Kubernetes) for a workspace token.
	AuthOIDCFederation AuthScheme = "OIDCFederation"
	// AuthAzureAD (Azure Databricks) uses a Microsoft Entra ID client-credentials token
	// of an app registration (AzureTenant, OAuthClientId, OAuthClientSecret).
	AuthAzureAD AuthScheme = "AzureAD"
	// AuthAzureMSI (Azure Databricks) uses a managed identity's token from the
	// instance metadata endpoint.
	AuthAzureMSI AuthScheme = "AzureMSI"
)

// Azure defaults.
const (
	// AzureDatabricksResource is the Entra ID application id of Azure Databricks:
	// the resource (audience) of Entra tokens for Databricks.
	AzureDatabricksResource   = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
	DefaultAzureAuthorityHost = "https://login.microsoftonline.com"
	DefaultAzureMSIEndpoint   = "http://169.254.169.254/metadata/identity/oauth2/token"
)

// InitiateOAuth says how much of the OAuth work the driver does by itself.
type InitiateOAuth string

// The InitiateOAuth modes.
const (
	// InitiateOff uses OAuthAccessToken as given; it never refreshes and never touches the store.
	InitiateOff InitiateOAuth = "OFF"
	// InitiateRefresh uses and refreshes stored or given tokens, but never starts a new login.
	InitiateRefresh InitiateOAuth = "REFRESH"
	// InitiateGetAndRefresh is InitiateRefresh plus a new login when no usable token exists.
	InitiateGetAndRefresh InitiateOAuth = "GETANDREFRESH"
)

// SSLMode is the TLS policy for the Postgres connection.
type SSLMode string

// The SSL modes. Lakebase accepts only TLS, so the modes below require are refused
// whenever a token is the password.
const (
	SSLDisable    SSLMode = "disable"
	SSLAllow      SSLMode = "allow"
	SSLPrefer     SSLMode = "prefer"
	SSLRequire    SSLMode = "require"
	SSLVerifyCA   SSLMode = "verify-ca"
	SSLVerifyFull SSLMode = "verify-full"
)

// Defaults of the connection properties.
const (
	DefaultPort            = 5432
	DefaultDatabase        = "databricks_postgres"
	DefaultCallbackURL     = "http://localhost:8020"
	DefaultPKCEClientID    = "databricks-cli"
	DefaultM2MScope        = "all-apis"
	DefaultPKCEScope       = "all-apis offline_access"
	DefaultTimeout         = 30 * time.Second
	DefaultApplicationName = "lakebase-go"
	// NoTimeout in Config.Timeout means no limit; "Timeout=0" in a connection string sets it.
	NoTimeout time.Duration = -1
)

// Config is a parsed and validated connection string. The zero value is not usable;
// get one from ParseDSN or fill one in and call Validate.
//
// Config's String method, and its fmt and slog forms, redact every secret
// (Password, OAuthClientSecret, OAuthAccessToken, OAuthRefreshToken, OAuthVerifier).
// FormatDSN writes the full connection string, secrets included.
type Config struct {
	AuthScheme            AuthScheme
	DatabricksInstance    string // workspace base URL, normalized to scheme://host[:port]
	Instance              string // Lakebase Provisioned instance name
	Endpoint              string // Lakebase Autoscaling endpoint path
	Server                string // Postgres host; resolved from Instance/Endpoint when empty
	Port                  int
	Database              string
	User                  string // Postgres role; inferred when empty
	Password              string // secret
	OAuthClientID         string
	OAuthClientSecret     string // secret
	Scope                 string
	InitiateOAuth         InitiateOAuth
	OAuthSettingsLocation string
	OAuthAccessToken      string        // secret
	OAuthRefreshToken     string        // secret
	OAuthExpiresIn        time.Duration // lifetime of OAuthAccessToken; 0 = unknown, negative = never expires
	OAuthTokenTimestamp   time.Time     // when OAuthAccessToken was issued; zero = unknown
	OAuthVerifier         string        // secret: an authorization code
	CallbackURL           string
	OAuthAuthorizationURL string
	OAuthAccessTokenURL   string
	SSLMode               SSLMode
	SSLServerCert         string        // PEM file path or inline PEM
	Timeout               time.Duration // 0 = DefaultTimeout, NoTimeout = no limit ("Timeout=0")
	ApplicationName       string
	Verbosity             int // 0 (off) .. 5
	Logfile               string
	Profile               string // ~/.databrickscfg profile to take workspace settings from
	ReadOnly              bool   // connect to the read-only host of the instance or endpoint
	OIDCTokenFile         string // OIDCFederation: file holding the workload identity JWT
	OIDCTokenEnv          string // OIDCFederation: environment variable holding it
	AzureTenant           string // AzureAD: the Entra ID tenant (directory) id
	AzureAuthorityHost    string // AzureAD: the Entra ID authority (DefaultAzureAuthorityHost)
	AzureMSIEndpoint      string // AzureMSI: the managed identity endpoint (DefaultAzureMSIEndpoint)

	// Ignored holds CData properties that were accepted but have no effect here,
	// keyed by their canonical name.
	Ignored map[string]string
}

// property describes one connection property.
type property struct {
	name    string
	aliases []string
	secret  bool
	set     func(c *Config, v string) error
	get     func(c *Config) string // "" = not written by FormatDSN
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
			for _, s := range []AuthScheme{AuthOAuthClient, AuthOAuthPKCE, AuthPassword, AuthDatabricksCLI, AuthOIDCFederation, AuthAzureAD, AuthAzureMSI} {
				if strings.EqualFold(v, string(s)) {
					c.AuthScheme = s
					return nil
				}
			}
			return fmt.Errorf("must be one of OAuthClient, OAuthPKCE, Password, DatabricksCLI, OIDCFederation, AzureAD, AzureMSI")
		},
		get: func(c *Config) string { return string(c.AuthScheme) },
	},
	strProp("DatabricksInstance", false, func(c *Config) *string { return &c.DatabricksInstance }, "Workspace"),
	strProp("Instance", false, func(c *Config) *string { return &c.Instance }),
	strProp("Endpoint", false, func(c *Config) *string { return &c.Endpoint }),
	strProp("Server", false, func(c *Config) *string { return &c.Server }),
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
		get: func(c *Config) string { return strconv.Itoa(c.Port) },
	},
	strProp("Database", false, func(c *Config) *string { return &c.Database }),
	strProp("User", false, func(c *Config) *string { return &c.User }),
	strProp("Password", true, func(c *Config) *string { return &c.Password }),
	strProp("OAuthClientId", false, func(c *Config) *string { return &c.OAuthClientID }),
	strProp("OAuthClientSecret", true, func(c *Config) *string { return &c.OAuthClientSecret }),
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
	strProp("OAuthAccessToken", true, func(c *Config) *string { return &c.OAuthAccessToken }),
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
		get: func(c *Config) string { return string(c.SSLMode) },
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
	strProp("ApplicationName", false, func(c *Config) *string { return &c.ApplicationName }),
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
	strProp("OIDCTokenFile", false, func(c *Config) *string { return &c.OIDCTokenFile }),
	strProp("OIDCTokenEnv", false, func(c *Config) *string { return &c.OIDCTokenEnv }),
	strProp("AzureTenant", false, func(c *Config) *string { return &c.AzureTenant }),
	strProp("AzureAuthorityHost", false, func(c *Config) *string { return &c.AzureAuthorityHost }),
	strProp("AzureMSIEndpoint", false, func(c *Config) *string { return &c.AzureMSIEndpoint }),
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
	"Visibility", "BrowsableSchemas", "IgnoredSchemas", "AllowPreparedStatement", "BrowsePartitions",
	"FetchResultSetMetadata", "InsertMode", "MaxRows", "TimeZone", "ThrowsKeyNotFound", "Other",
	"UseSSL", "LogModules", "MaxLogFileSize", "MaxLogFileCount", "Location", "Tables", "Views",
	"SupportEnhancedSQL", "UseConnectionPooling", "PoolMaxSize", "PoolIdleTimeout", "PoolWaitTime",
	"PoolMinSize", "ConnectOnOpen", "RTK", "CacheLocation",
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
	c, given, err := parseDSNNoValidate(dsn)
	if err != nil {
		return nil, err
	}
	if err := c.applyEnvironment(given, getenv); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDSNNoValidate parses dsn; given holds the canonical names it set.
func parseDSNNoValidate(dsn string) (c *Config, given map[string]bool, err error) {
	trimmed := strings.TrimSpace(dsn)
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
	for _, kv := range pairs {
		name, err := c.setProperty(kv[0], kv[1])
		if err != nil {
			return nil, nil, err
		}
		given[name] = true
	}
	return c, given, nil
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
	return "", &ConfigError{Property: name, Err: fmt.Errorf("unknown property%s", suggest(key))}
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
	for i < len(s) {
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
				return nil, &ConfigError{Property: firstWord(seg), Err: fmt.Errorf("has no '=' (write Name=Value pairs separated by ';')")}
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

func firstWord(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// suggest returns ` (did you mean "X"?)` for the known name nearest to key.
func suggest(key string) string {
	best, bestD := "", 1<<30
	consider := func(canon string) {
		d := levenshtein(key, normalizeKey(canon))
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

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Validate applies defaults and checks the whole configuration. ParseDSN calls it.
func (c *Config) Validate() error {
	if c.AuthScheme == "" {
		c.AuthScheme = AuthOAuthClient
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.SSLMode == "" {
		c.SSLMode = SSLRequire
	}
	if c.ApplicationName == "" {
		c.ApplicationName = DefaultApplicationName
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DatabricksInstance != "" {
		u, err := normalizeWorkspace(c.DatabricksInstance)
		if err != nil {
			return &ConfigError{Property: "DatabricksInstance", Value: c.DatabricksInstance, Err: err}
		}
		c.DatabricksInstance = u
	}
	for _, p := range []struct{ name, v string }{
		{"CallbackURL", c.CallbackURL},
		{"OAuthAuthorizationURL", c.OAuthAuthorizationURL},
		{"OAuthAccessTokenURL", c.OAuthAccessTokenURL},
	} {
		if p.v == "" {
			continue
		}
		u, err := url.Parse(p.v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &ConfigError{Property: p.name, Value: p.v, Err: fmt.Errorf("must be an absolute http(s) URL")}
		}
		if p.name != "CallbackURL" && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			return &ConfigError{Property: p.name, Value: p.v, Err: fmt.Errorf("must use https (http only for loopback hosts)")}
		}
	}

	switch c.AuthScheme {
	case AuthPassword:
		if c.Server == "" {
			return &ConfigError{Property: "Server", Err: fmt.Errorf("is required with AuthScheme=Password")}
		}
		if c.User == "" {
			return &ConfigError{Property: "User", Err: fmt.Errorf("is required with AuthScheme=Password")}
		}
		switch c.SSLMode {
		case SSLDisable, SSLAllow, SSLPrefer:
			if !isLoopbackHost(c.Server) {
				return &ConfigError{Property: "SSLMode", Value: string(c.SSLMode), Err: fmt.Errorf("%s is allowed only for loopback servers; Lakebase accepts TLS connections only (use require, verify-ca or verify-full)", c.SSLMode)}
			}
		}
		if c.InitiateOAuth == "" {
			c.InitiateOAuth = InitiateOff
		}
	case AuthDatabricksCLI, AuthOIDCFederation, AuthAzureAD, AuthAzureMSI:
		if err := c.refuseInsecureSSL(); err != nil {
			return err
		}
		if c.DatabricksInstance == "" {
			return &ConfigError{Property: "DatabricksInstance", Err: fmt.Errorf("is required with AuthScheme=%s", c.AuthScheme)}
		}
		if c.Instance != "" && c.Endpoint != "" {
			return &ConfigError{Property: "Endpoint", Err: fmt.Errorf("cannot be set together with Instance")}
		}
		if c.InitiateOAuth == "" {
			c.InitiateOAuth = InitiateGetAndRefresh
		}
		if c.Scope == "" {
			c.Scope = DefaultM2MScope
		}
		if c.AuthScheme == AuthAzureAD {
			if c.AzureTenant == "" {
				return &ConfigError{Property: "AzureTenant", Err: fmt.Errorf("is required with AuthScheme=AzureAD (the Entra ID tenant id)")}
			}
			if c.OAuthClientID == "" || c.OAuthClientSecret == "" {
				return &ConfigError{Property: "OAuthClientSecret", Err: fmt.Errorf("and OAuthClientId are required with AuthScheme=AzureAD (the app registration's client id and secret)")}
			}
			if c.AzureAuthorityHost == "" {
				c.AzureAuthorityHost = DefaultAzureAuthorityHost
			}
			if err := checkHTTPS("AzureAuthorityHost", c.AzureAuthorityHost, false); err != nil {
				return err
			}
		}
		if c.AuthScheme == AuthAzureMSI {
			if c.AzureMSIEndpoint == "" {
				c.AzureMSIEndpoint = DefaultAzureMSIEndpoint
			}
			if err := checkHTTPS("AzureMSIEndpoint", c.AzureMSIEndpoint, true); err != nil {
				return err
			}
		}
		if c.AuthScheme == AuthOIDCFederation && c.OIDCTokenFile == "" && c.OIDCTokenEnv == "" {
			return &ConfigError{Property: "OIDCTokenFile", Err: fmt.Errorf("or OIDCTokenEnv is required with AuthScheme=OIDCFederation (where the workload identity JWT is)")}
		}
	case AuthOAuthClient, AuthOAuthPKCE:
		if err := c.refuseInsecureSSL(); err != nil {
			return err
		}
		if c.DatabricksInstance == "" {
			return &ConfigError{Property: "DatabricksInstance", Err: fmt.Errorf("is required with AuthScheme=%s (the workspace host, e.g. dbc-1234.cloud.databricks.com)", c.AuthScheme)}
		}
		if c.Instance != "" && c.Endpoint != "" {
			return &ConfigError{Property: "Endpoint", Err: fmt.Errorf("cannot be set together with Instance: Endpoint names a Lakebase Autoscaling endpoint, Instance a Provisioned instance")}
		}
		if c.Endpoint != "" && !validEndpointPath(c.Endpoint) {
			return &ConfigError{Property: "Endpoint", Value: c.Endpoint, Err: fmt.Errorf("must look like projects/<project>/branches/<branch>/endpoints/<endpoint>")}
		}
		if c.InitiateOAuth == "" {
			if c.AuthScheme == AuthOAuthClient {
				c.InitiateOAuth = InitiateGetAndRefresh
			} else {
				c.InitiateOAuth = InitiateOff
			}
		}
		if c.AuthScheme == AuthOAuthPKCE {
			if c.OAuthClientID == "" {
				c.OAuthClientID = DefaultPKCEClientID
			}
			if c.Scope == "" {
				c.Scope = DefaultPKCEScope
			}
			if c.CallbackURL == "" {
				c.CallbackURL = DefaultCallbackURL
			}
		} else {
			if c.Scope == "" {
				c.Scope = DefaultM2MScope
			}
			if c.OAuthClientID == "" && c.InitiateOAuth == InitiateGetAndRefresh && c.OAuthAccessToken == "" && c.OAuthRefreshToken == "" {
				return &ConfigError{Property: "OAuthClientId", Err: fmt.Errorf("is required with AuthScheme=OAuthClient (the service principal's application id)")}
			}
			if c.OAuthClientID != "" && c.OAuthClientSecret == "" && c.InitiateOAuth == InitiateGetAndRefresh && c.OAuthAccessToken == "" && c.OAuthRefreshToken == "" {
				return &ConfigError{Property: "OAuthClientSecret", Err: fmt.Errorf("is required with AuthScheme=OAuthClient and InitiateOAuth=GETANDREFRESH")}
			}
		}
	}
	if c.Server != "" && strings.ContainsAny(c.Server, "/ \t") {
		return &ConfigError{Property: "Server", Value: c.Server, Err: fmt.Errorf("must be a host name or IP address")}
	}
	return nil
}

// refuseInsecureSSL refuses the SSL modes that could send a token in clear text.
func (c *Config) refuseInsecureSSL() error {
	switch c.SSLMode {
	case SSLDisable, SSLAllow, SSLPrefer:
		return &ConfigError{Property: "SSLMode", Value: string(c.SSLMode), Err: fmt.Errorf("%s is refused when an OAuth token is the password; use require, verify-ca or verify-full", c.SSLMode)}
	}
	return nil
}

// checkHTTPS accepts an https URL, or http for loopback hosts (and for the link-local
// instance metadata address when imds is set).
func checkHTTPS(prop, v string, imds bool) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return &ConfigError{Property: prop, Value: v, Err: fmt.Errorf("must be an absolute http(s) URL")}
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) && !(imds && u.Hostname() == "169.254.169.254") {
		return &ConfigError{Property: prop, Value: v, Err: fmt.Errorf("must use https (http only for loopback hosts)")}
	}
	return nil
}

func validEndpointPath(p string) bool {
	parts := strings.Split(p, "/")
	if len(parts) != 6 || parts[0] != "projects" || parts[2] != "branches" || parts[4] != "endpoints" {
		return false
	}
	return parts[1] != "" && parts[3] != "" && parts[5] != ""
}

// normalizeWorkspace turns "dbc-1.cloud.databricks.com" or "https://dbc-1.cloud.databricks.com/"
// into "https://dbc-1.cloud.databricks.com". http:// is allowed only for loopback hosts.
func normalizeWorkspace(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("must be a workspace host or URL, e.g. dbc-1234.cloud.databricks.com")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return "", fmt.Errorf("must use https (http:// is allowed only for loopback hosts)")
		}
	default:
		return "", fmt.Errorf("must use https")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("must be a bare workspace URL with no path, query or user")
	}
	return u.Scheme + "://" + u.Host, nil
}

func isLoopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// FormatDSN writes the configuration back as a CData connection string, secrets
// included, that ParseDSN reads to an equal Config.
func (c *Config) FormatDSN() string { return c.format(false) }

// String returns the connection string with every secret replaced by "********".
func (c Config) String() string { return c.format(true) }

// GoString is the %#v form; it redacts secrets like String.
func (c Config) GoString() string { return "lakebase.Config{" + c.format(true) + "}" }

// Format implements fmt.Formatter so that every verb (%v, %+v, %s, %q, %#v) redacts secrets.
func (c Config) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", c.String())
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, c.GoString())
			return
		}
		fmt.Fprint(f, c.String())
	default:
		fmt.Fprint(f, c.String())
	}
}

// LogValue implements slog.LogValuer: secrets are redacted.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for i := range properties {
		p := &properties[i]
		v := p.get(&c)
		if v == "" {
			continue
		}
		if p.secret {
			v = redacted
		}
		attrs = append(attrs, slog.String(p.name, v))
	}
	return slog.GroupValue(attrs...)
}

const redacted = "********"

func (c *Config) format(redact bool) string {
	var b strings.Builder
	for i := range properties {
		p := &properties[i]
		v := p.get(c)
		if v == "" {
			continue
		}
		if p.secret && redact {
			v = redacted
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(quoteValue(v))
	}
	names := make([]string, 0, len(c.Ignored))
	for n := range c.Ignored {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(n + "=" + quoteValue(c.Ignored[n]))
	}
	return b.String()
}

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
