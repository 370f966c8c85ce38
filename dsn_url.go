package lakebase

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

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
