package oauth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"golang.org/x/net/publicsuffix"
)

// ErrUntrustedIssuer is matched (errors.Is) by an IssuerError: the callback of a
// host-agnostic login named an issuer that the login host may not name, so the
// login was not completed and nothing was sent to it.
var ErrUntrustedIssuer = errors.New("lakebase: the callback's issuer is not a workspace of the login host; the login was not completed")

// IssuerError is a refused issuer (the callback's iss) of a host-agnostic login.
// Its fields name hosts only: an issuer is not secret, and the code and verifier
// are never in it.
type IssuerError struct {
	LoginHost  string // the login host's name (and port)
	IssuerHost string // the issuer's host as the callback gave it; "" when it has none
	Reason     string // what breaks the rule
}

// Error names the issuer's host, why it was refused, and that the login was not
// completed.
func (e *IssuerError) Error() string {
	host := "an issuer with no host"
	if e.IssuerHost != "" {
		h := e.IssuerHost
		if len(h) > 100 {
			h = h[:100] + "..."
		}
		host = fmt.Sprintf("issuer host %q", h)
	}
	return fmt.Sprintf("lakebase: the login was not completed: the callback named %s, which %s; a login through %s accepts only the issuers of its workspaces. Nothing was sent to it; log in again",
		host, e.Reason, e.LoginHost)
}

// Unwrap makes errors.Is(err, ErrUntrustedIssuer) true.
func (e *IssuerError) Unwrap() error { return ErrUntrustedIssuer }

// databricksClouds are the DNS zones of the Databricks clouds (as the Databricks
// Go SDK's environments name them), grouped by the login host that serves them:
// login.databricks.com serves the commercial clouds (AWS *.cloud.databricks.com,
// GCP *.gcp.databricks.com, Azure *.azuredatabricks.net, unified hosts under
// databricks.com, with their dev and staging zones); each sovereign cloud is its
// own group.
var databricksClouds = [][]string{
	{"databricks.com", "azuredatabricks.net"},
	{"databricks.us"},       // AWS GovCloud: *.cloud.databricks.us
	{"databricks.azure.us"}, // Azure Government
	{"databricks.azure.cn"}, // Azure China
}

// CheckIssuer applies the issuer rule of a host-agnostic login that started at
// loginHost to iss, the issuer its callback named, and returns the workspace host
// (scheme://host) the code may be redeemed at. It sends nothing. The rule:
//
//   - iss is exactly https://<host>/oidc or https://<host>/oidc/accounts/<id>
//     (optionally ending in "/"): plain ASCII, no user information, port, query,
//     fragment, percent-escape or other path.
//   - A loopback login host (a local emulator) allows only its own origin (the same
//     scheme, host name and port): another process on this machine cannot name its
//     own port.
//   - Any other login host allows only https issuers on DNS names (no IP literals,
//     no loopback) in its cloud: under databricks.com or azuredatabricks.net for a
//     login host under either (login.databricks.com), under the same zone for a
//     sovereign cloud's login host (databricks.us, databricks.azure.us,
//     databricks.azure.cn), and, for a login host outside the Databricks zones (a
//     private deployment), under the login host's parent domain
//     (login.example.com allows *.example.com) when that parent is a registrable
//     domain, or else under the login host's own name: a public suffix (a
//     top-level domain, co.uk, github.io: the Public Suffix List's ICANN and
//     private rules), under which anyone may register a name, is never a zone
//     (login.co.uk allows login.co.uk and *.login.co.uk, never attacker.co.uk). A
//     login host that is itself a public suffix, or an IP address, allows no
//     issuer (CheckLoginHost says so before a login starts).
//
// A refusal is an *IssuerError (errors.Is ErrUntrustedIssuer).
func CheckIssuer(loginHost, iss string) (string, error) {
	lh, err := url.Parse(loginHost)
	if err != nil || lh.Host == "" || !SecureURL(loginHost) {
		return "", &IssuerError{LoginHost: loginHost, IssuerHost: issuerHostOf(iss), Reason: "cannot be checked: the login host is not an https URL"}
	}
	refuse := func(reason string) (string, error) {
		return "", &IssuerError{LoginHost: lh.Host, IssuerHost: issuerHostOf(iss), Reason: reason}
	}
	for i := 0; i < len(iss); i++ {
		if c := iss[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '\\' {
			return refuse("is not a plain URL (it has spaces, escapes, backslashes or characters outside ASCII)")
		}
	}
	u, err := url.Parse(iss)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return refuse("is not an absolute URL")
	case u.User != nil || strings.Contains(iss, "@"):
		return refuse("has user information")
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(iss, "?"):
		return refuse("has a query")
	case u.Fragment != "" || strings.Contains(iss, "#"):
		return refuse("has a fragment")
	case !issuerPath(u.Path) || u.Scheme+"://"+u.Host+u.Path != iss:
		return refuse("is not a workspace's OIDC issuer (https://<workspace>/oidc)")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	lhost, lport := strings.ToLower(lh.Hostname()), lh.Port()

	if httpx.IsLoopbackHost(lhost) {
		if u.Scheme != lh.Scheme || host != lhost || port != lport {
			return refuse("is not the loopback login host's own origin (" + lh.Scheme + "://" + lh.Host + ")")
		}
		return u.Scheme + "://" + strings.ToLower(u.Host), nil
	}
	switch {
	case u.Scheme != "https":
		return refuse("is not https")
	case port != "":
		return refuse("has a port")
	case httpx.IsLoopbackHost(host) || net.ParseIP(strings.Trim(host, "[]")) != nil:
		return refuse("is an IP address or loopback host, not a workspace's name")
	case !dnsName(host):
		return refuse("is not a DNS name")
	}
	zones, why := issuerZones(lhost)
	if zones == nil {
		return refuse("cannot be checked: " + why)
	}
	for _, z := range zones {
		if host == z || strings.HasSuffix(host, "."+z) {
			return "https://" + host, nil
		}
	}
	return refuse("is outside the login host's domains (" + strings.Join(zones, ", ") + why + ")")
}

// CheckLoginHost reports whether a host-agnostic login may start at loginHost:
// an https URL (http only for a loopback host) whose host is a loopback host or a
// DNS name with a workspace zone, that is, not an IP address and not a public
// suffix (co.uk, github.io), under which the workspaces of unrelated owners live.
// The error is a sentence naming the login host and what to set, without the
// "lakebase:" prefix, so that it can follow a property name.
func CheckLoginHost(loginHost string) error {
	lh, err := url.Parse(loginHost)
	if err != nil || lh.Host == "" || !SecureURL(loginHost) {
		return errors.New("LoginHost must be an https URL (http only for loopback hosts)")
	}
	host := strings.ToLower(lh.Hostname())
	if httpx.IsLoopbackHost(host) {
		return nil
	}
	if zones, why := issuerZones(host); zones == nil {
		return errors.New(why + "; set LoginHost to the deployment's own login host (for example https://login.example.com)")
	}
	return nil
}

// issuerZones are the DNS zones an issuer of loginHost (a host name, not
// loopback) must be in. With none (nil), why says which LoginHost is refused and
// why; otherwise why is "" or a note on a public-suffix parent for an error.
func issuerZones(loginHost string) (zones []string, why string) {
	for _, cloud := range databricksClouds {
		for _, z := range cloud {
			if loginHost == z || strings.HasSuffix(loginHost, "."+z) {
				return cloud, ""
			}
		}
	}
	// A private deployment: the login host's parent domain when someone owns it
	// (it is not a public suffix), else the login host's own name when someone
	// owns that; never a public suffix, under which anyone may register a name.
	if net.ParseIP(strings.Trim(loginHost, "[]")) != nil {
		return nil, fmt.Sprintf("LoginHost %s is an IP address, which names no workspace domain", loginHost)
	}
	if i := strings.IndexByte(loginHost, '.'); i > 0 && registrable(loginHost[i+1:]) {
		return []string{loginHost[i+1:]}, ""
	}
	if !registrable(loginHost) {
		return nil, fmt.Sprintf("LoginHost %s is a public suffix (names under it belong to unrelated owners)", loginHost)
	}
	why = ""
	if i := strings.IndexByte(loginHost, '.'); i > 0 {
		why = "; " + loginHost[i+1:] + " is a public suffix, so LoginHost " + loginHost + " allows only itself and the names under it"
	}
	return []string{loginHost}, why
}

// registrable reports whether domain is a registrable domain or a name under
// one: it is not a public suffix by the Public Suffix List's ICANN or private
// rules (nor a bare top-level domain, which the list's default rule makes one).
func registrable(domain string) bool {
	_, err := publicsuffix.EffectiveTLDPlusOne(domain)
	return err == nil
}

// issuerPath reports whether p is a workspace's OIDC path: /oidc, or the
// account's /oidc/accounts/<id> on a unified host.
func issuerPath(p string) bool {
	p = strings.TrimSuffix(p, "/")
	if p == "/oidc" {
		return true
	}
	id, ok := strings.CutPrefix(p, "/oidc/accounts/")
	if !ok || id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// dnsName reports whether h is a lower-case DNS host name of two or more labels
// (letters, digits, hyphens; punycode for other scripts) whose last label is not
// numeric.
func dnsName(h string) bool {
	if len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil
}

// issuerHostOf is the host of iss for an error, "" when it has none.
func issuerHostOf(iss string) string {
	u, err := url.Parse(iss)
	if err != nil {
		return ""
	}
	return u.Host
}

// InWorkspaceCloud reports whether host (a host name, optionally with a port) is
// in the DNS zones of the workspace's cloud, by the domain rule CheckIssuer
// applies to issuers: under databricks.com or azuredatabricks.net for a workspace
// under either, under the sovereign cloud's zone for a sovereign workspace, under
// the workspace's parent domain for a private deployment (its own name when the
// parent is a public suffix; none when the workspace is one); a loopback host only for
// a loopback workspace (a local emulator). Lakebase's Postgres hosts are in their
// workspace's cloud; the root package uses this to decide whether a host read back
// from the settings store may be used with SSLMode=verify-full without asking the
// workspace (the certificate then proves the name, and the name is the cloud's).
func InWorkspaceCloud(workspace, host string) bool {
	wu, err := url.Parse(workspace)
	if err != nil || wu.Host == "" {
		return false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	wh := strings.ToLower(wu.Hostname())
	if httpx.IsLoopbackHost(wh) {
		return httpx.IsLoopbackHost(host)
	}
	if net.ParseIP(host) != nil || httpx.IsLoopbackHost(host) || !dnsName(host) {
		return false
	}
	zones, _ := issuerZones(wh)
	for _, z := range zones {
		if host == z || strings.HasSuffix(host, "."+z) {
			return true
		}
	}
	return false
}
