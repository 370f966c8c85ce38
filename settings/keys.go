package settings

import (
	"fmt"
	"slices"
	"strings"
)

// TokenKey names a login's tokens: the workspace, the OAuth client, the scheme and
// the scope (tokens of another scope are other tokens). The workspace's case and the
// order of the scope's words do not matter.
type TokenKey struct {
	Workspace, ClientID, Scheme, Scope string
}

// String is the key as stored: workspace|client|scheme|scope.
func (k TokenKey) String() string {
	words := strings.Fields(k.Scope)
	slices.Sort(words)
	return strings.ToLower(strings.TrimRight(k.Workspace, "/")) + "|" + k.ClientID + "|" + k.Scheme + "|" + strings.Join(words, " ")
}

// Database names what a credential is minted for, or a lookup resolves: an
// Autoscaling endpoint, a Provisioned instance, or a project's branch.
type Database string

// EndpointDatabase is the database of an Autoscaling endpoint.
func EndpointDatabase(endpoint string) Database { return Database("endpoint:" + endpoint) }

// InstanceDatabase is the database of a Provisioned instance.
func InstanceDatabase(instance string) Database { return Database("instance:" + instance) }

// BranchDatabase is the database a project's branch resolves to.
func BranchDatabase(project, branch string) Database {
	return Database("branch:projects/" + project + "/branches/" + branch)
}

// CredentialKey names a database credential: the login it was minted with, the
// database, the user and the read-only choice.
type CredentialKey struct {
	Login    TokenKey
	Database Database
	User     string
	ReadOnly bool
	Claims   string // the scope (CredentialClaims' string form); "" for an unscoped credential
}

// String is the key as stored (an unscoped credential's key is as it always was).
func (k CredentialKey) String() string {
	s := fmt.Sprintf("%s|%s|%s|ro=%v", k.Login, k.Database, k.User, k.ReadOnly)
	if k.Claims != "" {
		s += "|claims=" + k.Claims
	}
	return s
}

// LookupKey names the host lookup of a database in a workspace.
type LookupKey struct {
	Workspace string
	Database  Database
	ReadOnly  bool
	Pooled    bool // the pooled host
}

// String is the key as stored (the direct host's keys are as they always were).
func (k LookupKey) String() string {
	s := fmt.Sprintf("%s|%s|ro=%v", strings.ToLower(strings.TrimRight(k.Workspace, "/")), k.Database, k.ReadOnly)
	if k.Pooled {
		s += "|pooled"
	}
	return s
}

// Token returns the stored token of k, or nil.
func (s *Settings) Token(k TokenKey) *StoredToken { return s.Tokens[k.String()] }

// SetToken stores e as the token of k.
func (s *Settings) SetToken(k TokenKey, e *StoredToken) {
	if s.Tokens == nil {
		s.Tokens = map[string]*StoredToken{}
	}
	s.Tokens[k.String()] = e
}

// DeleteToken removes the token of k.
func (s *Settings) DeleteToken(k TokenKey) { delete(s.Tokens, k.String()) }

// Credential returns the stored credential of k, or nil.
func (s *Settings) Credential(k CredentialKey) *StoredCredential { return s.Credentials[k.String()] }

// SetCredential stores c under k.
func (s *Settings) SetCredential(k CredentialKey, c *StoredCredential) {
	if s.Credentials == nil {
		s.Credentials = map[string]*StoredCredential{}
	}
	s.Credentials[k.String()] = c
}

// DropCredential removes every stored credential whose token is token (one the
// server refused).
func (s *Settings) DropCredential(token string) {
	for k, c := range s.Credentials {
		if c.Token == token {
			delete(s.Credentials, k)
		}
	}
}

// Lookup returns the stored lookup of k, or nil.
func (s *Settings) Lookup(k LookupKey) *StoredLookup { return s.Lookups[k.String()] }

// SetLookup stores l under k.
func (s *Settings) SetLookup(k LookupKey, l *StoredLookup) {
	if s.Lookups == nil {
		s.Lookups = map[string]*StoredLookup{}
	}
	s.Lookups[k.String()] = l
}

// DeleteLookup removes the lookup of k.
func (s *Settings) DeleteLookup(k LookupKey) { delete(s.Lookups, k.String()) }

// UserName returns the stored user name of a login, or nil.
func (s *Settings) UserName(k TokenKey) *StoredUser { return s.UserNames[k.String()] }

// SetUserName stores the user name of a login.
func (s *Settings) SetUserName(k TokenKey, u *StoredUser) {
	if s.UserNames == nil {
		s.UserNames = map[string]*StoredUser{}
	}
	s.UserNames[k.String()] = u
}

// ForgetDerived removes what was derived from the login of k: its database
// credentials and its user name.
func (s *Settings) ForgetDerived(k TokenKey) {
	s.ForgetCredentials(k)
	delete(s.UserNames, k.String())
}

// ForgetCredentials removes the database credentials minted with the login of k.
func (s *Settings) ForgetCredentials(k TokenKey) {
	prefix := k.String() + "|"
	for key := range s.Credentials {
		if strings.HasPrefix(key, prefix) {
			delete(s.Credentials, key)
		}
	}
}

// ForgetLookups removes the host lookups of a workspace.
func (s *Settings) ForgetLookups(workspace string) {
	prefix := strings.ToLower(strings.TrimRight(workspace, "/")) + "|"
	for key := range s.Lookups {
		if strings.HasPrefix(key, prefix) {
			delete(s.Lookups, key)
		}
	}
}
