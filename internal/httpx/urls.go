package httpx

import (
	"errors"
	"net/url"
	"strings"
)

// CheckURL accepts an absolute https URL, or an http one for a loopback host (for
// any host with anyHTTP; for the link-local instance metadata address with imds).
// The error says what is wrong, never naming the URL (the caller names it).
func CheckURL(v string, anyHTTP, imds bool) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.Scheme == "http" && !anyHTTP && !IsLoopbackHost(u.Hostname()) && !(imds && u.Hostname() == "169.254.169.254") {
		return errors.New("must use https (http only for loopback hosts)")
	}
	return nil
}

// NormalizeWorkspace turns "dbc-1.cloud.databricks.com" or
// "https://dbc-1.cloud.databricks.com/" into "https://dbc-1.cloud.databricks.com".
// http:// is allowed only for loopback hosts.
func NormalizeWorkspace(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", errors.New("must be a workspace host or URL, e.g. dbc-1234.cloud.databricks.com")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return "", errors.New("must use https (http:// is allowed only for loopback hosts)")
		}
	default:
		return "", errors.New("must use https")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", errors.New("must be a bare workspace URL with no path, query or user")
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}
