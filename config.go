package lakebase

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakebase-go/lakebase/workspace"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"github.com/lakebase-go/lakebase/internal/sqlscan"

	"github.com/lakebase-go/lakebase/oauth"
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

// InitiateOAuth says how much of the OAuth work the driver does by itself. It is
// the oauth package's Mode under the connection property's name: one type, one set
// of values.
type InitiateOAuth = oauth.Mode

// The InitiateOAuth modes.
const (
	// InitiateOff uses OAuthAccessToken as given; it never refreshes and never touches the store.
	InitiateOff = oauth.ModeOff
	// InitiateRefresh uses and refreshes stored or given tokens, but never starts a new login.
	InitiateRefresh = oauth.ModeRefresh
	// InitiateGetAndRefresh is InitiateRefresh plus a new login when no usable token exists.
	InitiateGetAndRefresh = oauth.ModeGetAndRefresh
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
	DefaultApplicationName = "lakebase-go/" + Version
	// DefaultOIDCTokenEnv holds the workload identity JWT of OIDCFederation when
	// neither OIDCTokenFile nor OIDCTokenEnv is set.
	DefaultOIDCTokenEnv = "DATABRICKS_OIDC_TOKEN"
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
	// LoginHost is where a host-agnostic login (DiscoveryLogin, lakebase login with
	// no workspace) starts (default https://login.databricks.com).
	LoginHost string
	// WorkspaceID is the workspace's id, sent on every workspace API request as
	// X-Databricks-Workspace-Id (as the Go SDK does): a unified host serves many
	// workspaces. "": the host's metadata names it when a unified host asks.
	WorkspaceID string
	ReadOnly    bool // connect to the read-only host of the instance or endpoint
	// Pooled connects to the Autoscaling endpoint's pooled host (Lakebase's PgBouncer
	// in transaction mode; the read-only pooled host with ReadOnly), or says that
	// Server is one (with AuthScheme=Password, say): nothing is
	// prepared by name on the server (QueryExecMode defaults to cache_describe, and
	// database/sql's Prepare sends its SQL on every use), SessionRole is refused, and
	// session-level advisory locks are refused through database/sql.
	Pooled             bool
	OIDCTokenFile      string // OIDCFederation: file holding the workload identity JWT
	OIDCTokenEnv       string // OIDCFederation: environment variable holding it
	AzureTenant        string // AzureAD: the Entra ID tenant (directory) id
	AzureAuthorityHost string // AzureAD: the Entra ID authority (DefaultAzureAuthorityHost)
	AzureMSIEndpoint   string // AzureMSI: the managed identity endpoint (DefaultAzureMSIEndpoint)

	// QueryExecMode is pgx's default query exec mode: cache_statement (pgx's default),
	// cache_describe, describe_exec, exec or simple_protocol. "" is cache_statement,
	// or exec when DisablePreparedStatements is set.
	QueryExecMode string
	// StatementCacheCapacity and DescriptionCacheCapacity size pgx's per-session
	// caches; nil is pgx's default (512), 0 disables the cache.
	StatementCacheCapacity   *int
	DescriptionCacheCapacity *int
	// DisablePreparedStatements (AllowPreparedStatement=false) means no server-side
	// prepared statement is ever created: the exec mode defaults to exec, and
	// database/sql's Prepare returns a statement that sends its SQL on every use.
	DisablePreparedStatements bool
	// Project and Branch name an Autoscaling database by project and branch (ids or
	// full resource paths); the driver uses the branch's read-write endpoint (or
	// read-only with ReadOnly). Branch "" is the project's default branch.
	Project string
	Branch  string
	// SessionRole is a role the identity was granted: every session starts with it
	// (the role startup parameter), so current_user is the role and session_user the
	// identity.
	SessionRole string
	// TimeZone is the session time zone (an IANA name, e.g. Europe/Paris); "" leaves
	// the server's.
	TimeZone string
	// MaxRows caps the rows every query returns (CData's MaxRows); 0 is no cap.
	MaxRows int
	// ConnectOnOpen logs in once when the connector is made, so a wrong secret,
	// host or role fails at start-up rather than at the first query.
	ConnectOnOpen bool
	// Pool settings (CData's UseConnectionPooling, PoolMaxSize, PoolMinSize,
	// PoolIdleTimeout, PoolWaitTime), applied by OpenDB and PoolConfig.
	// NoConnectionPooling is UseConnectionPooling=false. nil or 0 leaves the default:
	// DefaultPoolMaxSize() sessions at most (or PoolMinSize when larger), as many
	// kept idle by OpenDB.
	NoConnectionPooling bool
	PoolMaxSize         *int
	PoolMinSize         *int
	PoolIdleTimeout     time.Duration
	PoolWaitTime        time.Duration
	// PoolMaxLifetime is the longest a pooled session lives (default
	// DefaultConnMaxLifetime, 45 minutes, jittered by up to a tenth so a fleet does not
	// reconnect at once): below Lakebase's 3-day session limit. OpenDB and PoolConfig
	// apply it.
	PoolMaxLifetime time.Duration
	// CredentialClaims scope every database credential minted (both APIs'
	// claims): with READ_ONLY it only reads the Unity Catalog tables named
	// (CredentialClaims=READ_ONLY:main.sales.orders,main.sales.items). nil:
	// unscoped. A scoped and an unscoped credential are stored apart.
	CredentialClaims *workspace.CredentialClaims
	// CredentialLifetime is the lifetime asked of Autoscaling database credentials
	// (the ttl of the request, 300 s to 1 h; 0: 1 h). Refresh-ahead follows the
	// expiry the service answers.
	CredentialLifetime time.Duration

	// envIgnored lists environment variables left unused because the connection
	// string named the database (logged by the connector).
	envIgnored []string

	// Ignored holds CData properties that were accepted but have no effect here,
	// keyed by their canonical name.
	Ignored map[string]string
}

// Validate checks the whole configuration, as it will be used: with the defaults
// of empty properties filled in. It does not modify c. ParseDSN and NewConnector
// call it.
func (c *Config) Validate() error {
	d := c.clone()
	if err := d.setDefaults(); err != nil {
		return err
	}
	return d.validate()
}

// setDefaults fills in the defaults of empty properties and normalizes the
// workspace URL. Defaults that depend on the scheme are set here too.
func (c *Config) setDefaults() error {
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
		if c.SSLServerCert == SSLServerCertSystem {
			c.SSLMode = SSLVerifyFull
		}
	}
	if c.ApplicationName == "" {
		c.ApplicationName = DefaultApplicationName
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	// Project and Branch may be given as resource paths.
	if b, err := workspace.ParseBranch(c.Branch); err == nil && (c.Project == "" || strings.TrimPrefix(c.Project, "projects/") == b.Project) {
		c.Project, c.Branch = b.Project, b.ID
	}
	c.Project = strings.TrimPrefix(c.Project, "projects/")
	if c.DatabricksInstance != "" {
		u, err := httpx.NormalizeWorkspace(c.DatabricksInstance)
		if err != nil {
			return &ConfigError{Property: "DatabricksInstance", Value: c.DatabricksInstance, Err: err}
		}
		c.DatabricksInstance = u
	}
	if c.InitiateOAuth == "" {
		switch c.AuthScheme {
		case AuthPassword, AuthOAuthPKCE:
			c.InitiateOAuth = InitiateOff
		default:
			c.InitiateOAuth = InitiateGetAndRefresh
		}
	}
	switch c.AuthScheme {
	case AuthOAuthPKCE:
		c.personDefaults()
	case AuthPassword:
	default:
		if c.Scope == "" {
			c.Scope = DefaultM2MScope
		}
	}
	if c.AuthScheme == AuthAzureAD && c.AzureAuthorityHost == "" {
		c.AzureAuthorityHost = DefaultAzureAuthorityHost
	}
	if c.AuthScheme == AuthOIDCFederation && c.OIDCTokenFile == "" && c.OIDCTokenEnv == "" {
		// As the Databricks SDKs: DATABRICKS_OIDC_TOKEN when no other place is named.
		c.OIDCTokenEnv = DefaultOIDCTokenEnv
	}
	if c.AuthScheme == AuthAzureMSI && c.AzureMSIEndpoint == "" {
		c.AzureMSIEndpoint = DefaultAzureMSIEndpoint
	}
	return nil
}

// personDefaults fills in the defaults of a person's login (OAuthPKCE): the
// Databricks CLI's public client, its scope, the local callback.
func (c *Config) personDefaults() {
	if c.OAuthClientID == "" {
		c.OAuthClientID = DefaultPKCEClientID
	}
	if c.Scope == "" {
		c.Scope = DefaultPKCEScope
	}
	if c.CallbackURL == "" {
		c.CallbackURL = DefaultCallbackURL
	}
}

// queryExecModes are the values of QueryExecMode: pgx's names.
var queryExecModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

// execMode is the effective pgx exec mode.
func (c *Config) execMode() pgx.QueryExecMode {
	if m, ok := queryExecModes[c.QueryExecMode]; ok {
		return m
	}
	if c.DisablePreparedStatements {
		return pgx.QueryExecModeExec
	}
	if c.Pooled {
		// One round trip that parses its statement each time (Parse, Bind, Execute,
		// Sync), with the description cached: nothing outlives the transaction, so
		// it is safe through PgBouncer's transaction pooling, and still binary.
		return pgx.QueryExecModeCacheDescribe
	}
	return pgx.QueryExecModeCacheStatement
}

// checkPooled refuses what the pooled host cannot do: PgBouncer in transaction mode
// gives each transaction any server session of the pool, so nothing set for a
// session lasts. TimeZone is kept: PgBouncer tracks it as a startup parameter.
func (c *Config) checkPooled() error {
	if c.SessionRole != "" {
		return &ConfigError{Property: "SessionRole", Value: c.SessionRole, Err: errors.New(
			"cannot be used with Pooled=true: the pooled host (PgBouncer in transaction mode) keeps no session state and refuses the role startup parameter; " +
				"connect to the direct host (Pooled=false) for a session role, or run SET LOCAL ROLE inside each transaction")}
	}
	if c.Instance != "" {
		return &ConfigError{Property: "Pooled", Value: "true", Err: fmt.Errorf(
			"needs a Lakebase Autoscaling endpoint (Endpoint= or Project=): Provisioned instances such as %s have no pooled host", c.Instance)}
	}
	return nil
}

// checkPooledSQL refuses, on the pooled host, a statement that calls a session-level
// advisory lock function (sqlscan.SessionAdvisoryLock: calls only, as PostgreSQL
// reads the text, U& names decoded), before anything is sent. SQL built inside the
// server (EXECUTE in PL/pgSQL, a function that takes the lock) is out of its reach.
func (c *Config) checkPooledSQL(query string) error {
	if !c.Pooled {
		return nil
	}
	name := sqlscan.SessionAdvisoryLock(query)
	if name == "" {
		return nil
	}
	return fmt.Errorf("%w (Pooled=true): the statement calls %q, a session-level advisory lock function, which through PgBouncer's transaction pooling "+
		"neither holds past the transaction nor can be unlocked; run migrations and other session-locked work on the direct host (Pooled=false), "+
		"or take pg_advisory_xact_lock inside a transaction", ErrPooledSessionLock, name)
}

// preparesOnServer reports whether database/sql's Prepare makes a server-side
// prepared statement: not with AllowPreparedStatement=false, nor on the pooled
// host unless QueryExecMode=cache_statement says the pooler keeps them.
func (c *Config) preparesOnServer() bool {
	if c.DisablePreparedStatements {
		return false
	}
	return !c.Pooled || c.QueryExecMode == "cache_statement"
}

// poolSettings reports whether any CData pool property is set.
func (c *Config) poolSettings() bool {
	return c.NoConnectionPooling || c.PoolMaxSize != nil || c.PoolMinSize != nil || c.PoolIdleTimeout != 0 || c.PoolWaitTime != 0 || c.PoolMaxLifetime != 0
}

// validate checks a configuration whose defaults are set.
func (c *Config) validate() error {
	if c.Port < 1 || c.Port > 65535 {
		return &ConfigError{Property: "Port", Value: strconv.Itoa(c.Port), Err: errors.New("must be a port number (1-65535)")}
	}
	if c.QueryExecMode != "" {
		if _, ok := queryExecModes[c.QueryExecMode]; !ok {
			return &ConfigError{Property: "QueryExecMode", Value: c.QueryExecMode, Err: fmt.Errorf("must be one of cache_statement, cache_describe, describe_exec, exec, simple_protocol")}
		}
		if c.DisablePreparedStatements && c.QueryExecMode == "cache_statement" {
			return &ConfigError{Property: "QueryExecMode", Value: c.QueryExecMode, Err: fmt.Errorf("cache_statement prepares statements on the server, which AllowPreparedStatement=false forbids; use exec or simple_protocol")}
		}
	}
	if c.SSLServerCert == SSLServerCertSystem && c.SSLMode != SSLVerifyFull {
		return &ConfigError{Property: "SSLMode", Value: string(c.SSLMode), Err: fmt.Errorf("must be verify-full (or unset) with SSLServerCert=system, which verifies the server against the system's roots and its host name")}
	}
	if c.TimeZone != "" {
		if err := checkTimeZone(c.TimeZone); err != nil {
			return &ConfigError{Property: "TimeZone", Value: c.TimeZone, Err: err}
		}
	}
	if c.Pooled {
		if err := c.checkPooled(); err != nil {
			return err
		}
	}
	if c.PoolMaxSize != nil && c.PoolMinSize != nil && *c.PoolMaxSize > 0 && *c.PoolMinSize > *c.PoolMaxSize {
		return &ConfigError{Property: "PoolMinSize", Value: strconv.Itoa(*c.PoolMinSize), Err: fmt.Errorf("is larger than PoolMaxSize=%d", *c.PoolMaxSize)}
	}
	for _, p := range []struct{ name, v string }{
		{"CallbackURL", c.CallbackURL},
		{"OAuthAuthorizationURL", c.OAuthAuthorizationURL},
		{"OAuthAccessTokenURL", c.OAuthAccessTokenURL},
	} {
		if p.v != "" {
			if err := checkHTTPS(p.name, p.v, p.name == "CallbackURL", false); err != nil {
				return err
			}
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
			if !httpx.IsLoopbackHost(c.Server) {
				return &ConfigError{Property: "SSLMode", Value: string(c.SSLMode), Err: fmt.Errorf("%s is allowed only for loopback servers; Lakebase accepts TLS connections only (use require, verify-ca or verify-full)", c.SSLMode)}
			}
		}
	default:
		if err := c.refuseInsecureSSL(); err != nil {
			return err
		}
		if c.DatabricksInstance == "" {
			return &ConfigError{Property: "DatabricksInstance", Err: fmt.Errorf("is required with AuthScheme=%s (the workspace host, e.g. dbc-1234.cloud.databricks.com)", c.AuthScheme)}
		}
		if c.Instance != "" && c.Endpoint != "" {
			return &ConfigError{Property: "Endpoint", Err: fmt.Errorf("cannot be set together with Instance: Endpoint names a Lakebase Autoscaling endpoint, Instance a Provisioned instance")}
		}
		if c.Project != "" && (c.Endpoint != "" || c.Instance != "") {
			return &ConfigError{Property: "Project", Err: fmt.Errorf("cannot be set together with Endpoint or Instance: name the database one way")}
		}
		if c.Branch != "" && c.Project == "" {
			return &ConfigError{Property: "Branch", Err: fmt.Errorf("needs Project (or a full path projects/<p>/branches/<b>)")}
		}
		for _, p := range []struct{ name, id string }{{"Branch", c.Branch}, {"Project", c.Project}} {
			if p.id != "" && !workspace.ValidResourceID(p.id) {
				return &ConfigError{Property: p.name, Value: p.id, Err: fmt.Errorf("must be an id (1-63 lowercase letters, digits and hyphens, starting with a letter) or a full resource path")}
			}
		}
		if c.Instance != "" && !workspace.ValidInstanceName(c.Instance) {
			return &ConfigError{Property: "Instance", Value: c.Instance, Err: fmt.Errorf("must be an instance name (letters, digits and hyphens)")}
		}
		if _, err := workspace.ParseEndpoint(c.Endpoint); c.Endpoint != "" && err != nil {
			return &ConfigError{Property: "Endpoint", Value: c.Endpoint, Err: fmt.Errorf("must look like projects/<project>/branches/<branch>/endpoints/<endpoint>, each id 1-63 lowercase letters, digits and hyphens starting with a letter")}
		}
	}
	switch c.AuthScheme {
	case AuthAzureAD:
		if c.AzureTenant == "" {
			return &ConfigError{Property: "AzureTenant", Err: fmt.Errorf("is required with AuthScheme=AzureAD (the Entra ID tenant id)")}
		}
		if c.OAuthClientID == "" || c.OAuthClientSecret == "" {
			return &ConfigError{Property: "OAuthClientSecret", Err: fmt.Errorf("and OAuthClientId are required with AuthScheme=AzureAD (the app registration's client id and secret)")}
		}
		if err := checkHTTPS("AzureAuthorityHost", c.AzureAuthorityHost, false, false); err != nil {
			return err
		}
	case AuthAzureMSI:
		if err := checkHTTPS("AzureMSIEndpoint", c.AzureMSIEndpoint, false, true); err != nil {
			return err
		}
	case AuthOIDCFederation:
		if c.OIDCTokenFile == "" && c.OIDCTokenEnv == "" {
			return &ConfigError{Property: "OIDCTokenFile", Err: fmt.Errorf("or OIDCTokenEnv is required with AuthScheme=OIDCFederation (where the workload identity JWT is)")}
		}
	case AuthOAuthClient:
		if c.OAuthClientID == "" && c.InitiateOAuth == InitiateGetAndRefresh && c.OAuthAccessToken == "" && c.OAuthRefreshToken == "" {
			return &ConfigError{Property: "OAuthClientId", Err: fmt.Errorf("is required with AuthScheme=OAuthClient (the service principal's application id)")}
		}
		if c.OAuthClientID != "" && c.OAuthClientSecret == "" && c.InitiateOAuth == InitiateGetAndRefresh && c.OAuthAccessToken == "" && c.OAuthRefreshToken == "" {
			return &ConfigError{Property: "OAuthClientSecret", Err: fmt.Errorf("is required with AuthScheme=OAuthClient and InitiateOAuth=GETANDREFRESH")}
		}
	}
	if c.Server != "" && strings.ContainsAny(c.Server, "/ \t") {
		return &ConfigError{Property: "Server", Value: c.Server, Err: fmt.Errorf("must be a host name or IP address")}
	}
	return nil
}

// checkTimeZone accepts an IANA time zone name that PostgreSQL knows too ("UTC",
// "Europe/Paris"); "Local" and other Go-only names are refused.
func checkTimeZone(tz string) error {
	if tz == "Local" || strings.ContainsAny(tz, " ;'\"\\") {
		return fmt.Errorf("must be an IANA time zone name such as UTC or Europe/Paris")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("is not a known IANA time zone name (e.g. UTC, Europe/Paris, America/New_York)")
	}
	return nil
}

// refuseInsecureSSL refuses the SSL modes that could send a token in clear text.
func (c *Config) refuseInsecureSSL() error {
	switch c.SSLMode {
	case SSLDisable, SSLAllow, SSLPrefer:
		return &ConfigError{Property: "SSLMode", Value: string(c.SSLMode), Err: errors.New("is refused when an OAuth token is the password; use require, verify-ca or verify-full")}
	}
	return nil
}

// checkHTTPS refuses a URL property that is not https (httpx.CheckURL: http for
// loopback hosts, for any host with anyHTTP, for the instance metadata address with
// imds).
func checkHTTPS(prop, v string, anyHTTP, imds bool) error {
	if err := httpx.CheckURL(v, anyHTTP, imds); err != nil {
		return &ConfigError{Property: prop, Value: v, Err: err}
	}
	return nil
}

func (c *Config) clone() *Config {
	n := *c
	for _, p := range []**int{&n.StatementCacheCapacity, &n.DescriptionCacheCapacity, &n.PoolMaxSize, &n.PoolMinSize} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	if c.Ignored != nil {
		n.Ignored = make(map[string]string, len(c.Ignored))
		for k, v := range c.Ignored {
			n.Ignored[k] = v
		}
	}
	return &n
}

// givenExpiry is the expiry of OAuthAccessToken from OAuthExpiresIn and
// OAuthTokenTimestamp: zero when unknown.
func (c *Config) givenExpiry() time.Time {
	switch {
	case c.OAuthExpiresIn < 0:
		return oauth.NeverExpires()
	case c.OAuthExpiresIn == 0:
		return time.Time{}
	case c.OAuthTokenTimestamp.IsZero():
		return time.Now().Add(c.OAuthExpiresIn)
	}
	return c.OAuthTokenTimestamp.Add(c.OAuthExpiresIn)
}

// basePgxConfig builds the pgx configuration from explicit values only. Every field
// that a PG* environment variable, a service file or .pgpass could have set is
// overwritten, so the environment never changes where or how the driver connects.
// Host, user and password are filled in per connection.
func (c *Config) basePgxConfig() (*pgx.ConnConfig, error) {
	// Every key libpq reads from the environment is given, so pgx reads none of them;
	// the password keeps .pgpass from being opened.
	cc, err := pgx.ParseConfig("host=127.0.0.1 port=5432 user=lakebase password=unset dbname=lakebase " +
		"sslmode=disable connect_timeout=0 target_session_attrs=any sslnegotiation=postgres")
	if err != nil {
		return nil, fmt.Errorf("lakebase: building the pgx configuration: %w", err)
	}
	cc.Port = uint16(c.Port)
	cc.Database = c.Database
	cc.Password = ""
	cc.Fallbacks = nil
	cc.KerberosSrvName, cc.KerberosSpn = "", ""
	cc.ValidateConnect = nil
	cc.ConnectTimeout = 0 // the connector bounds the whole connect with Timeout
	cc.SSLNegotiation = "postgres"
	cc.RuntimeParams = map[string]string{"application_name": c.ApplicationName}
	if c.TimeZone != "" {
		cc.RuntimeParams["timezone"] = c.TimeZone
	}
	if c.SessionRole != "" {
		// The session's default role, set at startup (as psql's -c role=R): RESET ROLE,
		// RESET ALL, DISCARD ALL and SET SESSION AUTHORIZATION DEFAULT return to it, so
		// no later user of a pooled session runs with the identity's wider rights.
		cc.RuntimeParams["role"] = c.SessionRole
	}
	cc.DefaultQueryExecMode = c.execMode()
	if c.StatementCacheCapacity != nil {
		cc.StatementCacheCapacity = *c.StatementCacheCapacity
	}
	if c.DescriptionCacheCapacity != nil {
		cc.DescriptionCacheCapacity = *c.DescriptionCacheCapacity
	}
	return cc, nil
}
