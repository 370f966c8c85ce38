// Package oauth gets Databricks workspace OAuth tokens and Lakebase database
// credentials: OIDC discovery, the client-credentials, authorization-code (PKCE S256)
// and refresh-token grants, a loopback callback server for browser logins, the
// Lakebase credential and lookup APIs, a token store shared safely between processes,
// and a cache that keeps one fetch in flight and refreshes ahead of expiry.
//
// It knows nothing of database/sql; the lakebase package wires it to connections.
package oauth
