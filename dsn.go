package lakebase

// A connection string flows one way, each step calling only the ones below it:
//
//	dsn.go         the grammar: CData pairs, the lakebase:// URL form, quoting and
//	               writing a Config back (String, FormatDSN)
//	env.go         what the environment and ~/.databrickscfg offer for the
//	               properties the string left out (it only reads the Config)
//	properties.go  the property table: names, aliases, secrets, how each is set
//	config.go      Config, its defaults and its validation

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/lakebase-go/lakebase/internal/textdist"
)

// Prefixes accepted in front of a connection string.
var dsnPrefixes = []string{"jdbc:cdata:lakebase:", "jdbc:lakebase:"}

// ParseDSN parses a CData-style connection string ("Name=Value;Name=Value"), or the
// lakebase:// URL form, applies defaults and validates the result.
//
// Properties the string leaves out are taken from the environment where Databricks
// and Postgres conventions say so (PGHOST, DATABRICKS_HOST, ~/.databrickscfg, ...;
// see the README); the connection string always wins.
func ParseDSN(dsn string) (*Config, error) {
	return parseDSN(dsn, os.Getenv)
}

func parseDSN(dsn string, getenv func(string) string) (*Config, error) {
	c, err := parseDSNNoDefaults(dsn, getenv)
	if err != nil {
		return nil, err
	}
	if err := c.setDefaults(); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDSNNoDefaults parses dsn and applies the environment, leaving empty the
// properties that have defaults (NewConnector decides some of them from its options).
func parseDSNNoDefaults(dsn string, getenv func(string) string) (*Config, error) {
	c, given, err := parseDSNNoValidate(dsn)
	if err != nil {
		return nil, err
	}
	vals, ignored, err := fromEnvironment(c, given, getenv)
	if err != nil {
		return nil, err
	}
	for _, v := range vals {
		if _, err := c.setProperty(v.prop, v.value); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Err = fmt.Errorf("%w (from %s)", ce.Err, v.source)
			}
			return nil, err
		}
	}
	c.envIgnored = ignored
	return c, nil
}

// parseDSNNoValidate parses dsn; given holds the canonical names it set.
func parseDSNNoValidate(dsn string) (c *Config, given map[string]bool, err error) {
	trimmed := strings.TrimSpace(dsn)
	if err := refuseForeignForm(trimmed); err != nil {
		return nil, nil, err
	}
	var pairs [][2]string
	if len(trimmed) >= len(urlScheme) && strings.EqualFold(trimmed[:len(urlScheme)], urlScheme) {
		pairs, err = urlPairs(trimmed)
	} else {
		pairs, err = splitPairs(trimmed)
	}
	if err != nil {
		return nil, nil, err
	}
	c, given = &Config{}, map[string]bool{}
	for i, kv := range pairs {
		name, err := c.setProperty(kv[0], kv[1])
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) && ce.unknown {
				// An unknown name is quoted back only when it looks like a name and does
				// not follow a secret (unless it is a near miss of a property name): after
				// Password=ab;CD=x, "CD" may be the rest of the password (an unquoted ';').
				_, nearMiss := clearlyPropertyName(kv[0]) // a typo of a property, not a fragment of a secret
				if i > 0 && isSecretKey(pairs[i-1][0]) && !nearMiss {
					return nil, nil, &ConfigError{Err: fmt.Errorf("pair %d is not a known property (not shown: it follows the secret %s, whose value may hold an unquoted ';'; quote it: %s='...', doubling any ' inside)",
						i+1, canonicalName(pairs[i-1][0]), canonicalName(pairs[i-1][0]))}
				}
				if !looksLikeName(kv[0]) {
					return nil, nil, &ConfigError{Err: fmt.Errorf("pair %d has a name that is not a property name (not shown); write Name=Value pairs separated by ';'", i+1)}
				}
			}
			return nil, nil, err
		}
		given[name] = true
	}
	return c, given, nil
}

// canonicalName is the canonical spelling of a known property name.
func canonicalName(name string) string {
	if p, ok := propByKey[normalizeKey(name)]; ok {
		return p.name
	}
	return name
}

// looksLikeName reports whether s could be a property name someone typed: letters,
// digits, spaces, '_', '-' and '.', starting with a letter, at most 64 bytes.
func looksLikeName(s string) bool {
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

// acceptedForms names the connection-string forms this driver reads, for messages.
const acceptedForms = "this driver reads CData pairs (AuthScheme=OAuthClient;DatabricksInstance=...;Endpoint=...) or a lakebase:// URL; " +
	"for a native Postgres role use AuthScheme=Password;Server=<host>;User=<role>;Password=<password>"

// refuseForeignForm refuses, without quoting any of its text (it may hold a
// password), a PostgreSQL URL (postgres://, postgresql://) or a libpq key=value
// string pasted where a lakebase connection string belongs.
func refuseForeignForm(s string) error {
	lower := strings.ToLower(s)
	for _, p := range []string{"postgres://", "postgresql://"} {
		if strings.HasPrefix(lower, p) {
			return &ConfigError{Err: fmt.Errorf("this is a PostgreSQL URL (%s...), not shown since it may hold a password; %s", p, acceptedForms)}
		}
	}
	if strings.Contains(s, ";") || strings.HasPrefix(lower, urlScheme) {
		return nil
	}
	fields := strings.Fields(s)
	n := 0
	for i, f := range fields {
		name, _, ok := strings.Cut(f, "=")
		if _, known := libpqKeywords[strings.ToLower(strings.TrimSpace(name))]; ok && known {
			n++
		} else if i == 0 {
			return nil
		}
	}
	if n >= 2 {
		return &ConfigError{Err: fmt.Errorf("this is a libpq connection string (host=... dbname=...), not shown since it may hold a password; %s", acceptedForms)}
	}
	return nil
}

// splitPairs splits a CData connection string into name/value pairs.
func splitPairs(s string) ([][2]string, error) {
	for _, p := range dsnPrefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			break
		}
	}
	var pairs [][2]string
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
				if name, ok := clearlyPropertyName(seg); ok {
					return nil, &ConfigError{Property: name, Err: fmt.Errorf("has no '=' (write Name=Value pairs separated by ';')")}
				}
				return nil, &ConfigError{Err: fmt.Errorf("pair %d (at offset %d) has no '=': write Name=Value pairs separated by ';', and quote a value that holds ';' with ' or \"", pair, i)}
			}
			i = j + 1
			continue
		}
		name := strings.TrimSpace(s[i:eq])
		if name == "" {
			return nil, &ConfigError{Err: fmt.Errorf("a pair at offset %d has an empty name", i)}
		}
		// value
		k := eq + 1
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		var value string
		if k < len(s) && (s[k] == '\'' || s[k] == '"') {
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
				return nil, &ConfigError{Property: name, Secret: isSecretKey(name), Err: fmt.Errorf("has an unterminated quoted value")}
			}
			for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
				k++
			}
			if k < len(s) && s[k] != ';' {
				return nil, &ConfigError{Property: name, Secret: isSecretKey(name), Err: fmt.Errorf("has text after the closing quote")}
			}
			value = b.String()
		} else {
			end := strings.IndexByte(s[k:], ';')
			if end < 0 {
				end = len(s)
			} else {
				end += k
			}
			value = strings.TrimSpace(s[k:end])
			k = end
		}
		pairs = append(pairs, [2]string{name, value})
		i = k + 1
	}
	return pairs, nil
}

// clearlyPropertyName reports whether seg is a property name (known, or within a
// small edit distance of one), and returns it, canonical when known.
func clearlyPropertyName(seg string) (string, bool) {
	for _, r := range seg {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_') {
			return "", false
		}
	}
	key := normalizeKey(seg)
	if p, ok := propByKey[key]; ok {
		return p.name, true
	}
	if n, ok := ignoredByKey[key]; ok {
		return n, true
	}
	for i := range properties {
		if textdist.Levenshtein(key, normalizeKey(properties[i].name)) <= 2 {
			return seg, true
		}
	}
	return "", false
}

const redacted = "********"

// QuoteDSNValue returns v written as a value of a CData connection string, so that
// "Name="+QuoteDSNValue(v) parses back (ParseDSN) to exactly v, whatever v holds: a
// value holding ';', a quote or edge whitespace, or an empty one, is enclosed in '
// with each ' doubled; any other is written as it is. Use it to build connection
// strings from names and secrets that are not yours (a role name, a password).
func QuoteDSNValue(v string) string {
	if v == "" {
		return "''"
	}
	if !strings.ContainsAny(v, ";'\"") && strings.TrimSpace(v) == v {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// String returns the connection string with every secret replaced by "********".
func (c Config) String() string { return c.format(true) }

// GoString is the %#v form; it redacts secrets like String.
func (c Config) GoString() string { return "lakebase.Config{" + c.format(true) + "}" }

// Format implements fmt.Formatter so that every verb (%v, %+v, %s, %q, %#v) redacts secrets.
func (c Config) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", c.String())
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, c.GoString())
			return
		}
		fmt.Fprint(f, c.String())
	default:
		fmt.Fprint(f, c.String())
	}
}

// LogValue implements slog.LogValuer: secrets are redacted.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for i := range properties {
		p := &properties[i]
		v := p.get(&c)
		if v == "" {
			continue
		}
		if p.secret {
			v = redacted
		}
		attrs = append(attrs, slog.String(p.name, v))
	}
	return slog.GroupValue(attrs...)
}

// FormatDSN writes the configuration back as a CData connection string, secrets
// included, that ParseDSN reads to an equal Config.
func (c *Config) FormatDSN() string { return c.format(false) }

func (c *Config) format(redact bool) string {
	var b strings.Builder
	for i := range properties {
		p := &properties[i]
		v := p.get(c)
		if v == "" {
			continue
		}
		if p.secret && redact {
			v = redacted
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(QuoteDSNValue(v))
	}
	names := make([]string, 0, len(c.Ignored))
	for n := range c.Ignored {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(n + "=" + QuoteDSNValue(c.Ignored[n]))
	}
	return b.String()
}

const urlScheme = "lakebase://"

// urlPairs reads the URL form of a connection string into name/value pairs, for
// tools that only take URLs:
//
//	lakebase://[user[:password]@][host][:port][/database][?Property=Value&...]
//
// The user, password, host, port and path set User, Password, Server, Port and
// Database; every query parameter is a connection property with the same names,
// aliases and rules as the CData form, and wins over the URL parts.
func urlPairs(s string) ([][2]string, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse errors quote the whole URL, which may hold a password.
		return nil, &ConfigError{Err: fmt.Errorf("the lakebase:// URL is malformed (percent-encode reserved characters in the user, password and values)")}
	}
	var pairs [][2]string
	if u.User != nil {
		pairs = append(pairs, [2]string{"User", u.User.Username()})
		if pw, ok := u.User.Password(); ok {
			pairs = append(pairs, [2]string{"Password", pw})
		}
	}
	if h := u.Hostname(); h != "" {
		pairs = append(pairs, [2]string{"Server", h})
	}
	if p := u.Port(); p != "" {
		pairs = append(pairs, [2]string{"Port", p})
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if strings.Contains(db, "/") {
			return nil, &ConfigError{Property: "Database", Value: db, Err: fmt.Errorf("the URL path must be a single database name")}
		}
		pairs = append(pairs, [2]string{"Database", db})
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("the lakebase:// URL query is malformed (percent-encode '%%', '&' and '=' in values)")}
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic when two spellings name one property
	for _, name := range names {
		vals := q[name]
		if name == "" {
			return nil, &ConfigError{Err: fmt.Errorf("the lakebase:// URL query has a parameter with an empty name")}
		}
		pairs = append(pairs, [2]string{name, vals[len(vals)-1]})
	}
	return pairs, nil
}
