package lakebasetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/internal/pgcluster"
)

// Scoped credentials (Unity Catalog claims). Both credential APIs take
// claims: [{"permission_set": "READ_ONLY", "resources": [{"table_name": "c.s.t"}]}];
// the emulator records them in the credential, and a session logged in with a
// READ_ONLY credential, on the direct and on the pooled host, is logged in to
// PostgreSQL as a login role of its own (one per identity and scope) that may only
// SELECT the named tables, mapped to the tables of the same schema-qualified name
// (s.t; the catalog is the database), and is a member of no other role. No SET can
// widen that: SET ROLE needs a membership it does not have, SET SESSION
// AUTHORIZATION a superuser login. Its sessions start read-only too (the role's
// default_transaction_read_only), which a session may switch off; the grants still
// refuse every write (42501). That is what it models of the service's scoping; it
// does not model Unity Catalog's grants.

// credClaim is one claim of a credential request.
type credClaim struct {
	PermissionSet string `json:"permission_set"`
	Resources     []struct {
		TableName string `json:"table_name"`
	} `json:"resources"`
}

// CredentialScope is what a scoped credential may do: its permission set and tables.
type CredentialScope struct {
	PermissionSet string
	Tables        []string
}

// checkClaims validates the claims of a request; it returns the scope (nil for
// none) or an API error message.
func checkClaims(claims []credClaim) (*CredentialScope, string) {
	if len(claims) == 0 {
		return nil, ""
	}
	if len(claims) > 1 {
		return nil, "only one claim is supported"
	}
	c := claims[0]
	if c.PermissionSet != "READ_ONLY" {
		return nil, fmt.Sprintf("permission_set %q is not supported (READ_ONLY)", c.PermissionSet)
	}
	sc := &CredentialScope{PermissionSet: c.PermissionSet}
	for _, r := range c.Resources {
		if strings.Count(r.TableName, ".") != 2 {
			return nil, fmt.Sprintf("table_name %q must be catalog.schema.table", r.TableName)
		}
		sc.Tables = append(sc.Tables, r.TableName)
	}
	if len(sc.Tables) == 0 {
		return nil, "a claim needs resources"
	}
	sort.Strings(sc.Tables)
	return sc, ""
}

// CredentialScopeOf returns the scope a credential was minted with (nil for an
// unscoped one, or one the emulator did not mint).
func (s *Server) CredentialScopeOf(credential string) *CredentialScope {
	c, err := s.parseJWT(credential)
	if err != nil || c.Scoped == nil {
		return nil
	}
	cp := *c.Scoped
	return &cp
}

// writeClaimsError answers a request whose claims the service would refuse.
func writeClaimsError(w http.ResponseWriter, msg string) {
	writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "claims: "+msg)
}

// scopeRole makes (once per cluster, database and role) the login role a session
// of user with a scoped credential is logged in as, and returns its name. The role
// is user's own for this scope: SELECT on the named tables (USAGE on their
// schemas), no membership in any role, read-only by default. A named table that
// does not exist grants nothing.
func (s *Server) scopeRole(pg *pgcluster.Cluster, db, user string, sc *CredentialScope) (string, error) {
	sum := sha256.Sum256([]byte(user + "\x00" + sc.PermissionSet + ":" + strings.Join(sc.Tables, ",")))
	role := "lb_scope_" + hex.EncodeToString(sum[:6])
	key := pg.Dir() + "|" + db + "|" + role
	s.mu.Lock()
	done := s.scopes[key]
	s.mu.Unlock()
	if done {
		return role, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := pgcluster.QuoteIdent(role)
	q := fmt.Sprintf(`DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE %s LOGIN NOINHERIT; END IF;
END $$; ALTER ROLE %s SET default_transaction_read_only = on; COMMENT ON ROLE %s IS %s`,
		pgcluster.QuoteLiteral(role), r, r, r,
		pgcluster.QuoteLiteral(sc.PermissionSet+" scope of "+user+": "+strings.Join(sc.Tables, ", ")))
	if err := pg.Exec(ctx, db, q); err != nil {
		return "", err
	}
	for _, t := range sc.Tables {
		parts := strings.SplitN(t, ".", 3)
		schema, table := pgcluster.QuoteIdent(parts[1]), pgcluster.QuoteIdent(parts[2])
		pg.Exec(ctx, db, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", schema, r))
		pg.Exec(ctx, db, fmt.Sprintf("GRANT SELECT ON %s.%s TO %s", schema, table, r))
	}
	if err := pg.AllowLogin(ctx, role); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.scopes[key] = true
	s.mu.Unlock()
	return role, nil
}
