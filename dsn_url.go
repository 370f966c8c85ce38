package lakebase

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

const urlScheme = "lakebase://"

// parseURL reads the URL form of a connection string, for tools that only take URLs:
//
//	lakebase://[user[:password]@][host][:port][/database][?Property=Value&...]
//
// The user, password, host, port and path set User, Password, Server, Port and
// Database; every query parameter is a connection property with the same names,
// aliases and rules as the CData form. A property given both ways takes the query
// parameter's value.
func parseURL(s string) (*Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse errors quote the whole URL, which may hold a password.
		return nil, &ConfigError{Err: fmt.Errorf("the lakebase:// URL is malformed (percent-encode reserved characters in the user, password and values)")}
	}
	c := &Config{}
	if u.User != nil {
		if err := c.setProperty("User", u.User.Username()); err != nil {
			return nil, err
		}
		if pw, ok := u.User.Password(); ok {
			if err := c.setProperty("Password", pw); err != nil {
				return nil, err
			}
		}
	}
	if h := u.Hostname(); h != "" {
		if err := c.setProperty("Server", h); err != nil {
			return nil, err
		}
	}
	if p := u.Port(); p != "" {
		if err := c.setProperty("Port", p); err != nil {
			return nil, err
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if strings.Contains(db, "/") {
			return nil, &ConfigError{Property: "Database", Value: db, Err: fmt.Errorf("the URL path must be a single database name")}
		}
		if err := c.setProperty("Database", db); err != nil {
			return nil, err
		}
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
		if err := c.setProperty(name, vals[len(vals)-1]); err != nil {
			return nil, err
		}
	}
	return c, nil
}
