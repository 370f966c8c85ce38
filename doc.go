// Package lakebase is a database/sql driver for Databricks Lakebase, Databricks'
// managed PostgreSQL.
//
// It reads CData-style connection strings, gets and refreshes OAuth tokens by itself,
// turns them into Lakebase database credentials used as the Postgres password, and
// hands all data traffic to pgx v5:
//
//	import _ "github.com/lakebase-go/lakebase"
//
//	db, err := sql.Open("lakebase",
//		"AuthScheme=OAuthClient;DatabricksInstance=dbc-1234.cloud.databricks.com;"+
//			"Endpoint=projects/p/branches/main/endpoints/ep;OAuthClientId=...;OAuthClientSecret=...")
//
// # Connection strings
//
// A connection string is a list of Name=Value pairs separated by ';'. Names are
// case-insensitive and may contain spaces ("Auth Scheme" is AuthScheme). A value that
// holds ';' or edge spaces is quoted with ' or ", and the quote is escaped by doubling
// it. The last duplicate wins. The prefixes jdbc:cdata:lakebase: and jdbc:lakebase:
// are accepted, and so is a URL form, lakebase://user@host:port/db?Name=Value&...
// See Config for the properties and ParseDSN for the rules.
//
// # Where to start
//
// NewConnector (or sql.Open) takes the connection string. Each AuthScheme is a
// golang.org/x/oauth2 token source feeding one pipeline (workspace token, then
// database credential, both cached and refreshed ahead of expiry); WithTokenSource
// plugs in your own. The login steps of a person are Connector methods
// (AuthorizationURL, ExchangeCode, BrowserLogin, RefreshToken); the EXEC procedures
// adapt them for SQL-only callers. WithPgxConfig and WithAfterConnect reach every
// pgx session. Package lakebasetest is a local Lakebase emulator for tests.
//
// # Connections
//
// A connection opens its Postgres session lazily, on the first statement that needs
// the database. The virtual OAuth procedures (EXEC GetOAuthAuthorizationURL, ...) are
// answered by the driver and never need a token or a reachable database.
//
// The pgx connection under a database/sql connection is reachable through
// sql.Conn.Raw, as with pgx's own driver:
//
//	conn.Raw(func(dc any) error {
//		pc := dc.(*lakebase.Conn).Conn() // the *pgx.Conn
//		...
//	})
//
// # Packages
//
// The root holds the driver and its wiring, internal/pipeline the token pipeline;
// package workspace is the Databricks workspace REST API, oauth the token sources,
// settings the settings store, storedproc the EXEC grammar, lakebasetest the
// emulator. None of them imports the root (CONTRIBUTING.md lists the rooms).
package lakebase
