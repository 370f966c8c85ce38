// Package settings is the driver's settings store: what OAuthSettingsLocation
// holds — workspace tokens, pending logins, database credentials, host lookups and
// user names — in a file (with a cross-process lock), the OS keyring, or process
// memory. Its keys are typed (TokenKey, CredentialKey, LookupKey) and built and
// parsed here only; every entry derived from a login records that login.
//
// It imports nothing of the driver but its internal plumbing: OAuth, the workspace
// API and database/sql use it, not the other way round.
package settings
