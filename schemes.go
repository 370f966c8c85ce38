package lakebase

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/pipeline"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
	"github.com/lakebase-go/lakebase/workspace"
)

// AuthTokenSource is the AuthScheme of a connector built WithTokenSource: the
// workspace token comes from the caller's oauth2.TokenSource.
const AuthTokenSource AuthScheme = "TokenSource"

// newLoginSource builds the login of the connector's AuthScheme: the fixed password,
// or the token pipeline fed by the scheme's oauth2.TokenSource. It also returns the
// person-login steps of the schemes that have a person to log in (nil otherwise).
func (c *Connector) newLoginSource() (*pipeline.Pipeline, *personLogin, error) {
	cfg := c.cfg
	if cfg.AuthScheme == AuthPassword {
		return nil, nil, nil // a native password: Connector.login hands it out
	}
	hc := c.opts.httpClient
	onRetry := func(op string, attempt int, wait time.Duration, err error) {
		c.logger.Info("lakebase: retrying after a transient failure", slog.String("op", op),
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", err.Error()))
	}
	// Every token scheme's login is a token pipeline: it keeps the host's metadata
	// in its store, tells the observers, and answers the connector's questions about
	// the database.
	pipe := func(src oauth2.TokenSource, stored *oauth.Source, userIsClientID bool) *pipeline.Pipeline {
		p := pipeline.New(cfg.pipelineConfig(userIsClientID), pipeline.Options{Log: c.logger, HTTP: hc,
			Workspace: c.workspaceOptions(workspace.Options{OnRetry: onRetry}), Source: src, Stored: stored, HostMeta: c.hostMeta,
			Emit: c.pipelineEvent, PropertyError: func(e *workspace.PropertyError) error {
				return &ConfigError{Property: e.Property, Value: e.Value, Err: e.Err}
			}})
		c.database = p
		return p
	}

	switch cfg.AuthScheme {
	case AuthTokenSource:
		return pipe(c.opts.tokenSource, nil, false), nil, nil
	case AuthDatabricksCLI:
		return pipe(&oauth.CLISource{Workspace: cfg.DatabricksInstance, Profile: cfg.Profile}, nil, false), nil, nil
	case AuthAzureAD:
		return pipe(&oauth.EntraSource{HTTP: hc, Authority: cfg.AzureAuthorityHost, Tenant: cfg.AzureTenant,
			ClientID: cfg.OAuthClientID, ClientSecret: cfg.OAuthClientSecret, Resource: AzureDatabricksResource}, nil, true), nil, nil
	case AuthAzureMSI:
		return pipe(&oauth.ManagedIdentitySource{HTTP: hc, Endpoint: cfg.AzureMSIEndpoint, ClientID: cfg.OAuthClientID,
			Resource: AzureDatabricksResource}, nil, false), nil, nil
	case AuthOIDCFederation:
		return pipe(&oauth.FederationSource{Client: c.tokenClient(onRetry), File: cfg.OIDCTokenFile, Env: cfg.OIDCTokenEnv,
			Scope: cfg.Scope}, nil, false), nil, nil
	case AuthOAuthClient, AuthOAuthPKCE:
	default:
		return nil, nil, &ConfigError{Property: "AuthScheme", Value: string(cfg.AuthScheme), Err: errors.New("is not supported")}
	}

	// OAuthClient and OAuthPKCE keep their tokens in a store, and follow InitiateOAuth.
	store, err := c.openStore()
	if err != nil {
		return nil, nil, err
	}
	client := c.tokenClient(onRetry)
	src := &oauth.Source{
		Scheme: oauth.SchemeClient, Mode: cfg.InitiateOAuth, Workspace: cfg.DatabricksInstance,
		Scope: cfg.Scope, Client: client,
		AccessToken: cfg.OAuthAccessToken, RefreshToken: cfg.OAuthRefreshToken, Expiry: cfg.givenExpiry(),
		Verifier: cfg.OAuthVerifier, CallbackURL: cfg.CallbackURL, Store: store,
		OnUnsaved: func(err error) {
			c.logger.Warn("lakebase: the settings store could not be written; the new token is kept in memory and written at the next chance",
				slog.String("error", err.Error()))
		},
		OnToken: func(origin string, t *oauth2.Token) {
			c.logger.Debug("lakebase: workspace token", slog.String("origin", origin), slog.Time("expiry", t.Expiry),
				slog.String("workspace", cfg.DatabricksInstance), slog.String("client_id", cfg.OAuthClientID))
		},
	}
	p := pipe(src, src, cfg.AuthScheme == AuthOAuthClient)
	// Both schemes can log a person in with the login steps: OAuthPKCE as a public
	// client (its own way to log in), OAuthClient as a confidential one (an app's web
	// login with its client secret; the person's tokens are returned, and stored with
	// REFRESH or GETANDREFRESH — set User to the person then).
	person := &personLogin{cfg: cfg, log: c.logger, client: client, stored: src, pipeline: p,
		openBrowser: c.opts.openBrowser, stderr: c.opts.stderr, scope: cfg.Scope}
	// Pending logins live in the store when one was named (so another connection or
	// process can finish them), otherwise in this process.
	person.pending = settings.MemoryStore("\x00lakebase-pending")
	if cfg.OAuthSettingsLocation != "" || cfg.AuthScheme == AuthOAuthPKCE && cfg.InitiateOAuth != InitiateOff {
		person.pending = store
	}
	if cfg.AuthScheme == AuthOAuthClient {
		person.scope = DefaultPKCEScope // Scope is the client credentials' scope
		return p, person, nil
	}
	src.Scheme = oauth.SchemePKCE
	src.Login = person.browserLogin
	return p, person, nil
}

// pipelineConfig is what the token pipeline needs of the configuration.
func (c *Config) pipelineConfig(userIsClientID bool) pipeline.Config {
	return pipeline.Config{Workspace: c.DatabricksInstance, Endpoint: c.Endpoint, Instance: c.Instance, Project: c.Project,
		Branch: c.Branch, Server: c.Server, Port: c.Port, User: c.User, ClientID: c.OAuthClientID, UserIsClientID: userIsClientID,
		ReadOnly: c.ReadOnly, Pooled: c.Pooled, VerifyFull: c.SSLMode == SSLVerifyFull, NoStore: c.InitiateOAuth == InitiateOff,
		Timeout: c.Timeout, CredentialLifetime: c.CredentialLifetime, Claims: c.CredentialClaims}
}

// tokenClient is the one place the OAuth client of the workspace's OIDC server is
// built (discovery, with the OAuthAuthorizationURL/OAuthAccessTokenURL overrides).
func (c *Connector) tokenClient(onRetry func(string, int, time.Duration, error)) *oauth.TokenClient {
	cfg := c.cfg
	disc := &oauth.Discovery{HTTP: c.opts.httpClient, Workspace: cfg.DatabricksInstance,
		Override: oauth2.Endpoint{AuthURL: cfg.OAuthAuthorizationURL, TokenURL: cfg.OAuthAccessTokenURL}, Metadata: c.hostMeta}
	return &oauth.TokenClient{HTTP: c.opts.httpClient, Discovery: disc, ClientID: cfg.OAuthClientID,
		ClientSecret: cfg.OAuthClientSecret, OnRetry: onRetry}
}

// DefaultSettingsLocation returns the default OAuthSettingsLocation for OAuthPKCE:
// <user config dir>/lakebase/OAuthSettings.txt.
func DefaultSettingsLocation() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "lakebase", "OAuthSettings.txt"), nil
}

// openStore opens the token store of OAuthSettingsLocation. OAuthClient without a
// location keeps tokens in memory (client credentials can always be fetched again);
// OAuthPKCE defaults to a file, since a login would be lost otherwise.
func (c *Connector) openStore() (settings.Store, error) {
	loc := c.cfg.OAuthSettingsLocation
	if loc == "" {
		if c.cfg.AuthScheme == AuthOAuthClient {
			return settings.NewPrivateMemoryStore(), nil
		}
		var err error
		if loc, err = DefaultSettingsLocation(); err != nil {
			return nil, &ConfigError{Property: "OAuthSettingsLocation", Err: fmt.Errorf("has no default here (%v); set it to a file path or memory://<id>", err)}
		}
	}
	st, err := settings.OpenStore(loc)
	if err != nil {
		return nil, &ConfigError{Property: "OAuthSettingsLocation", Value: loc, Err: err}
	}
	if c.cfg.AuthScheme == AuthOAuthClient {
		// When its file cannot be written (a read-only file system, say), tokens stay
		// in memory and a warning is logged.
		return settings.WithMemoryFallback(st, func(se *settings.SettingsFileError) {
			c.logger.Warn("lakebase: OAuthSettingsLocation cannot be written; keeping tokens in memory",
				slog.String("location", st.Location()), slog.String("error", se.Error()))
		}), nil
	}
	return st, nil
}

// userAgentName is the auth/ part of the User-Agent, in the Databricks SDKs' words
// where they have one.
func (s AuthScheme) userAgentName() string {
	switch s {
	case AuthOAuthClient:
		return "oauth-m2m"
	case AuthOAuthPKCE:
		return "oauth-u2m"
	case AuthDatabricksCLI:
		return "databricks-cli"
	case AuthOIDCFederation:
		return "oidc-federation"
	case AuthAzureAD:
		return "azure-client-secret"
	case AuthAzureMSI:
		return "azure-msi"
	case AuthTokenSource:
		return "token-source"
	case AuthPassword:
		return "password"
	}
	return strings.ToLower(string(s))
}
