// Package pipeline is the login of every token scheme: a workspace token from the
// scheme's oauth2.TokenSource (cached, refreshed ahead of expiry), exchanged for a
// database credential (cached likewise), plus the host (workspace.Client.Locate)
// and the user name; what a login learns is kept in the settings store so the next
// process starts warm (store.go). The driver's Connector wires one per connector
// and asks it for a login per new session.
package pipeline
