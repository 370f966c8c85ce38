// Package oauth gets Databricks workspace OAuth tokens: OIDC discovery, the
// client-credentials, authorization-code (PKCE S256), refresh-token and
// token-exchange grants (through golang.org/x/oauth2), Source — the OAuthClient and
// OAuthPKCE token source that keeps its tokens in a settings store — the desktop
// login's loopback callback server, the Databricks CLI, OIDC federation, Microsoft
// Entra and managed-identity sources, and TokenError.
//
// It knows nothing of database/sql or of the workspace REST API (package
// workspace); the settings store is package settings. It must not import the
// lakebase package or package workspace.
package oauth
