package lakebase

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/lakebase-go/lakebase/workspace"
	"golang.org/x/oauth2"
)

// Option configures a Connector. Options only record values; NewConnector validates
// them together with the connection string.
type Option func(*options)

type options struct {
	logger       *slog.Logger
	httpClient   *http.Client
	openBrowser  func(url string) error
	stderr       io.Writer
	tokenSource  oauth2.TokenSource
	pgxConfig    []func(*pgx.ConnConfig)
	afterConnect []func(context.Context, *pgx.Conn) error
	observers    observers
	claims       *workspace.CredentialClaims
	confirmWS    func(workspace string) error
}

// WithCredentialClaims scopes every database credential the connector mints (the
// typed form of CredentialClaims; it wins over the connection string's).
func WithCredentialClaims(c workspace.CredentialClaims) Option {
	return func(o *options) { o.claims = &c }
}

// WithConfirmWorkspace makes a host-agnostic login (DiscoveryLogin,
// FinishDiscoveryLogin) ask confirm about the workspace the login host named, after
// it passed the issuer rule (oauth.CheckIssuer) and before the code is redeemed
// there or any token is stored: an error from confirm ends the login, and nothing
// is sent or stored. Without it the workspace is only printed (WithStderr).
func WithConfirmWorkspace(confirm func(workspace string) error) Option {
	return func(o *options) { o.confirmWS = confirm }
}

// WithLogger sends the driver's log records to l. Without it, the Verbosity and
// Logfile properties decide (off by default). Secrets are never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHTTPClient sets the HTTP client used for the workspace's OIDC and REST APIs.
// Its transport is used as it is; its redirect policy is not: requests that carry a
// secret never follow a redirect.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithBrowserOpener replaces the function that opens the system browser in the
// desktop OAuthPKCE flow (for tests, or to show the URL another way).
func WithBrowserOpener(open func(url string) error) Option {
	return func(o *options) { o.openBrowser = open }
}

// WithStderr sets where the desktop OAuthPKCE flow prints the login URL (default
// os.Stderr), in case no browser opens.
func WithStderr(w io.Writer) Option { return func(o *options) { o.stderr = w } }

// WithTokenSource makes ts the source of the workspace OAuth token: the Databricks
// SDK's, a platform's workload identity, a test's. The driver still caches the token
// (refreshing ahead of its expiry), exchanges it for database credentials and
// resolves the host; the connection string then names only the database
// (DatabricksInstance plus Endpoint, Instance or Server; Port, Database, the SSL
// properties) and AuthScheme may be omitted (it reads TokenSource). Tokens from ts
// are never written to a settings store.
//
// When ts also has a method TokenContext(context.Context) (*oauth2.Token, error),
// the driver calls that, so the token work is bounded by Timeout.
func WithTokenSource(ts oauth2.TokenSource) Option { return func(o *options) { o.tokenSource = ts } }

// WithPgxConfig registers fn to adjust the pgx configuration of every new Postgres
// session just before it connects: a tracer (otelpgx for OpenTelemetry), a custom
// dialer, runtime parameters. fn must not change the host, port, user, password or
// TLS settings (the driver sets them per login; changes to them are overwritten).
func WithPgxConfig(fn func(*pgx.ConnConfig)) Option {
	return func(o *options) { o.pgxConfig = append(o.pgxConfig, fn) }
}

// WithAfterConnect registers fn to run on every new Postgres session after login and
// before first use: type registration (pgvector-go), session settings. An error
// closes the session and fails the statement that opened it.
func WithAfterConnect(fn func(context.Context, *pgx.Conn) error) Option {
	return func(o *options) { o.afterConnect = append(o.afterConnect, fn) }
}
