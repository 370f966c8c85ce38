// Package connstr is the grammar of lakebase connection strings: CData-style
// Name=Value pairs separated by ';' (values quoted with ' or ", a doubled quote
// standing for itself), the lakebase:// URL form, and quoting a value back. It
// knows no property: the caller's Rules say which names are secrets and which
// segments are property names, so errors never quote a secret.
package connstr

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Pair is one Name=Value of a connection string, as written.
type Pair struct{ Name, Value string }

// Error is a grammar error. It never holds a value of a secret: Name is the
// property it is about ("" when the name may itself be part of a secret), Value a
// non-secret value to show.
type Error struct {
	Name   string
	Value  string
	Secret bool // Name names a secret
	Msg    string
}

func (e *Error) Error() string {
	if e.Name != "" {
		return e.Name + " " + e.Msg
	}
	return e.Msg
}

// Rules are what the grammar asks of the property table.
type Rules struct {
	// IsSecret reports whether a name (as written) names a secret.
	IsSecret func(name string) bool
	// PropertyName reports whether a segment with no '=' is clearly a property
	// name (known, or a near miss of one), and returns it as it should be shown.
	PropertyName func(seg string) (string, bool)
}

// Prefixes accepted in front of a CData connection string.
var Prefixes = []string{"jdbc:cdata:lakebase:", "jdbc:lakebase:"}

// URLScheme starts the URL form.
const URLScheme = "lakebase://"

// IsURL reports whether s is in the URL form.
func IsURL(s string) bool {
	return len(s) >= len(URLScheme) && strings.EqualFold(s[:len(URLScheme)], URLScheme)
}

// Parse reads s, in either form, into pairs.
func Parse(s string, r Rules) ([]Pair, error) {
	if IsURL(s) {
		return URLPairs(s)
	}
	return Split(s, r)
}

// Split splits a CData connection string into name/value pairs.
func Split(s string, r Rules) ([]Pair, error) {
	for _, p := range Prefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			break
		}
	}
	var pairs []Pair
	i := 0
	for pair := 1; i < len(s); pair++ {
		// name
		eq := -1
		j := i
		for ; j < len(s) && s[j] != ';'; j++ {
			if s[j] == '=' {
				eq = j
				break
			}
		}
		if eq < 0 {
			seg := strings.TrimSpace(s[i:j])
			if seg != "" {
				// The segment may be the tail of a value that held ';' unquoted (a
				// password), or a secret typed with the wrong separator: only a segment
				// that is clearly a property name is quoted back.
				if name, ok := r.PropertyName(seg); ok {
					return nil, &Error{Name: name, Msg: "has no '=' (write Name=Value pairs separated by ';')"}
				}
				return nil, &Error{Msg: fmt.Sprintf("pair %d (at offset %d) has no '=': write Name=Value pairs separated by ';', and quote a value that holds ';' with ' or \"", pair, i)}
			}
			i = j + 1
			continue
		}
		name := strings.TrimSpace(s[i:eq])
		if name == "" {
			return nil, &Error{Msg: fmt.Sprintf("a pair at offset %d has an empty name", i)}
		}
		value, k, err := readValue(s, eq+1)
		if err != nil {
			return nil, &Error{Name: name, Secret: r.IsSecret(name), Msg: err.Error()}
		}
		pairs = append(pairs, Pair{name, value})
		i = k + 1
	}
	return pairs, nil
}

// readValue reads the value that starts at s[k] (after '='): quoted, or up to the
// next ';'. It returns the value and the index of the ';' that ends it (or len(s)).
func readValue(s string, k int) (string, int, error) {
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	if k >= len(s) || s[k] != '\'' && s[k] != '"' {
		end := strings.IndexByte(s[k:], ';')
		if end < 0 {
			end = len(s)
		} else {
			end += k
		}
		return strings.TrimSpace(s[k:end]), end, nil
	}
	q := s[k]
	var b strings.Builder
	k++
	closed := false
	for k < len(s) {
		if s[k] == q {
			if k+1 < len(s) && s[k+1] == q {
				b.WriteByte(q)
				k += 2
				continue
			}
			closed = true
			k++
			break
		}
		b.WriteByte(s[k])
		k++
	}
	if !closed {
		return "", 0, fmt.Errorf("has an unterminated quoted value")
	}
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	if k < len(s) && s[k] != ';' {
		return "", 0, fmt.Errorf("has text after the closing quote")
	}
	return b.String(), k, nil
}

// Quote quotes a value when it holds ';', a quote or edge whitespace (or is
// empty), so that Split reads it back unchanged.
func Quote(v string) string {
	if v == "" {
		return "''"
	}
	if !strings.ContainsAny(v, ";'\"") && strings.TrimSpace(v) == v {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// URLPairs reads the URL form of a connection string into name/value pairs, for
// tools that only take URLs:
//
//	lakebase://[user[:password]@][host][:port][/database][?Property=Value&...]
//
// The user, password, host, port and path set User, Password, Server, Port and
// Database; every query parameter is a pair of its own, after them (so it wins).
func URLPairs(s string) ([]Pair, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse errors quote the whole URL, which may hold a password.
		return nil, &Error{Msg: "the lakebase:// URL is malformed (percent-encode reserved characters in the user, password and values)"}
	}
	var pairs []Pair
	if u.User != nil {
		pairs = append(pairs, Pair{"User", u.User.Username()})
		if pw, ok := u.User.Password(); ok {
			pairs = append(pairs, Pair{"Password", pw})
		}
	}
	if h := u.Hostname(); h != "" {
		pairs = append(pairs, Pair{"Server", h})
	}
	if p := u.Port(); p != "" {
		pairs = append(pairs, Pair{"Port", p})
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if strings.Contains(db, "/") {
			return nil, &Error{Name: "Database", Value: db, Msg: "the URL path must be a single database name"}
		}
		pairs = append(pairs, Pair{"Database", db})
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, &Error{Msg: "the lakebase:// URL query is malformed (percent-encode '%', '&' and '=' in values)"}
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic when two spellings name one property
	for _, name := range names {
		if name == "" {
			return nil, &Error{Msg: "the lakebase:// URL query has a parameter with an empty name"}
		}
		vals := q[name]
		pairs = append(pairs, Pair{name, vals[len(vals)-1]})
	}
	return pairs, nil
}

// LooksLikeName reports whether s could be a property name someone typed: letters,
// digits, spaces, '_', '-' and '.', starting with a letter, at most 64 bytes.
func LooksLikeName(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Foreign names the form of a string that is not a lakebase connection string
// but another driver's: "a PostgreSQL URL (postgres://...)" or "a libpq
// connection string (host=... dbname=...)", or "" when it is not one of them.
// isKeyword reports whether a lower-case name is a libpq keyword. The string
// itself is never quoted (it may hold a password).
func Foreign(s string, isKeyword func(string) bool) string {
	lower := strings.ToLower(s)
	for _, p := range []string{"postgres://", "postgresql://"} {
		if strings.HasPrefix(lower, p) {
			return "a PostgreSQL URL (" + p + "...)"
		}
	}
	if strings.Contains(s, ";") || strings.HasPrefix(lower, URLScheme) {
		return ""
	}
	n := 0
	for i, f := range strings.Fields(s) {
		name, _, ok := strings.Cut(f, "=")
		if ok && isKeyword(strings.ToLower(strings.TrimSpace(name))) {
			n++
		} else if i == 0 {
			return ""
		}
	}
	if n >= 2 {
		return "a libpq connection string (host=... dbname=...)"
	}
	return ""
}
