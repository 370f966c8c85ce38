package lakebase

// A connection string flows one way, each step calling only the ones below it:
//
//	dsn.go         reading a string into a Config through the grammar
//	               (internal/connstr: CData pairs, the lakebase:// URL form,
//	               quoting) and writing a Config back (String, FormatDSN)
//	env.go         what the environment and ~/.databrickscfg offer for the
//	               properties the string left out (it only reads the Config)
//	properties.go  the property table: names, aliases, secrets, how each is set
//	config.go      Config, its defaults and its validation

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/lakebase-go/lakebase/internal/connstr"
)

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
	pairs, err := connstr.Parse(trimmed, connstr.Rules{IsSecret: isSecretKey, PropertyName: clearlyPropertyName})
	if err != nil {
		var ge *connstr.Error
		if errors.As(err, &ge) {
			return nil, nil, &ConfigError{Property: ge.Name, Value: ge.Value, Secret: ge.Secret, Err: errors.New(ge.Msg)}
		}
		return nil, nil, err
	}
	c, given = &Config{}, map[string]bool{}
	for i, kv := range pairs {
		name, err := c.setProperty(kv.Name, kv.Value)
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) && ce.unknown {
				// An unknown name is quoted back only when it looks like a name and does
				// not follow a secret (unless it is a near miss of a property name): after
				// Password=ab;CD=x, "CD" may be the rest of the password (an unquoted ';').
				_, nearMiss := clearlyPropertyName(kv.Name) // a typo of a property, not a fragment of a secret
				if i > 0 && isSecretKey(pairs[i-1].Name) && !nearMiss {
					return nil, nil, &ConfigError{Err: fmt.Errorf("pair %d is not a known property (not shown: it follows the secret %s, whose value may hold an unquoted ';'; quote it: %s='...', doubling any ' inside)",
						i+1, canonicalName(pairs[i-1].Name), canonicalName(pairs[i-1].Name))}
				}
				if !connstr.LooksLikeName(kv.Name) {
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
	if p, ok := props.Lookup(name); ok {
		return p.Name
	}
	return name
}

// acceptedForms names the connection-string forms this driver reads, for messages.
const acceptedForms = "this driver reads CData pairs (AuthScheme=OAuthClient;DatabricksInstance=...;Endpoint=...) or a lakebase:// URL; " +
	"for a native Postgres role use AuthScheme=Password;Server=<host>;User=<role>;Password=<password>"

// refuseForeignForm refuses, without quoting any of its text (it may hold a
// password), a PostgreSQL URL (postgres://, postgresql://) or a libpq key=value
// string pasted where a lakebase connection string belongs.
func refuseForeignForm(s string) error {
	form := connstr.Foreign(s, func(k string) bool { _, ok := libpqKeywords[k]; return ok })
	if form == "" {
		return nil
	}
	return &ConfigError{Err: fmt.Errorf("this is %s, not shown since it may hold a password; %s", form, acceptedForms)}
}

// clearlyPropertyName reports whether seg is a property name (known, or within a
// small edit distance of one), and returns it, canonical when known.
func clearlyPropertyName(seg string) (string, bool) {
	for _, r := range seg {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_') {
			return "", false
		}
	}
	if p, ok := props.Lookup(seg); ok {
		return p.Name, true
	}
	if n, ok := props.Ignored(seg); ok {
		return n, true
	}
	if props.Near(seg) {
		return seg, true
	}
	return "", false
}

const redacted = "********"

// QuoteDSNValue returns v written as a value of a CData connection string, so that
// "Name="+QuoteDSNValue(v) parses back (ParseDSN) to exactly v, whatever v holds: a
// value holding ';', a quote or edge whitespace, or an empty one, is enclosed in '
// with each ' doubled; any other is written as it is. Use it to build connection
// strings from names and secrets that are not yours (a role name, a password).
func QuoteDSNValue(v string) string { return connstr.Quote(v) }

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
	for _, p := range props.Pairs(&c, redacted, nil) {
		attrs = append(attrs, slog.String(p.Name, p.Value))
	}
	return slog.GroupValue(attrs...)
}

// FormatDSN writes the configuration back as a CData connection string, secrets
// included, that ParseDSN reads to an equal Config.
func (c *Config) FormatDSN() string { return c.format(false) }

func (c *Config) format(redact bool) string {
	mask := ""
	if redact {
		mask = redacted
	}
	return connstr.Format(props.Pairs(c, mask, c.Ignored))
}
