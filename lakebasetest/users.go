package lakebasetest

import "fmt"

// UserToken returns a workspace access token of the person email, as a Databricks
// App's proxy forwards it in X-Forwarded-Access-Token when the app has user
// authorization. The person is registered (with a Postgres role of the same name)
// when they are not yet, so a test needs no browser. The token is a signed JWT
// with the server's token lifetime; SCIM Me answers with the person, database
// credentials minted with it log in as the person's role, and Revoke refuses it.
func (s *Server) UserToken(email string) (string, error) {
	s.mu.Lock()
	known := s.users[email]
	s.mu.Unlock()
	if !known {
		if err := s.AddUser(email); err != nil {
			return "", err
		}
	}
	tok, _, err := s.issueAccess(email, "all-apis")
	if err != nil {
		return "", fmt.Errorf("lakebasetest: signing a token for %s: %w", email, err)
	}
	s.remember(tok)
	return tok, nil
}
