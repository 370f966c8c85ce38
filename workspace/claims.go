package workspace

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// CredentialClaims scope a database credential to Unity Catalog tables: with
// PermissionSet READ_ONLY the credential only reads Tables (catalog.schema.table).
// Both credential APIs take them as
// claims: [{"permission_set": ..., "resources": [{"table_name": ...}]}].
type CredentialClaims struct {
	PermissionSet string
	Tables        []string
}

// PermissionReadOnly is the permission set of a read-only credential.
const PermissionReadOnly = "READ_ONLY"

var (
	permissionSet = regexp.MustCompile(`^[A-Z][A-Z_]{0,63}$`)
	ucPart        = `[A-Za-z_][A-Za-z0-9_$-]{0,254}`
	ucTable       = regexp.MustCompile(`^` + ucPart + `\.` + ucPart + `\.` + ucPart + `$`)
)

// ParseCredentialClaims reads the connection-string form
// PERMISSION_SET:catalog.schema.table[,catalog.schema.table...] (e.g.
// READ_ONLY:main.sales.orders,main.sales.items).
func ParseCredentialClaims(s string) (*CredentialClaims, error) {
	perm, tables, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return nil, fmt.Errorf("must be PERMISSION_SET:catalog.schema.table[,...], e.g. READ_ONLY:main.sales.orders")
	}
	c := &CredentialClaims{PermissionSet: strings.ToUpper(strings.TrimSpace(perm))}
	for _, t := range strings.Split(tables, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Tables = append(c.Tables, t)
		}
	}
	return c, c.Validate()
}

// Validate checks the permission set and the table names.
func (c *CredentialClaims) Validate() error {
	if !permissionSet.MatchString(c.PermissionSet) {
		return fmt.Errorf("permission set %q is not a name like READ_ONLY", c.PermissionSet)
	}
	if len(c.Tables) == 0 {
		return fmt.Errorf("names no table (catalog.schema.table)")
	}
	for _, t := range c.Tables {
		if !ucTable.MatchString(t) {
			return fmt.Errorf("table %q is not catalog.schema.table", t)
		}
	}
	return nil
}

// String is the connection-string form, tables sorted: two equal scopes are equal
// strings (stored credentials are keyed by it).
func (c *CredentialClaims) String() string {
	if c == nil {
		return ""
	}
	t := append([]string(nil), c.Tables...)
	sort.Strings(t)
	return c.PermissionSet + ":" + strings.Join(t, ",")
}

// body is the claims as the credential APIs take them.
func (c *CredentialClaims) body() []map[string]any {
	if c == nil {
		return nil
	}
	res := make([]map[string]string, 0, len(c.Tables))
	for _, t := range c.Tables {
		res = append(res, map[string]string{"table_name": t})
	}
	return []map[string]any{{"permission_set": c.PermissionSet, "resources": res}}
}
