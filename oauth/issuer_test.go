package oauth

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// The issuer rule of a host-agnostic login, as a table: which callback iss values
// a login host may name, and the workspace each gives. Forged values (look-alike
// hosts, userinfo, fragments, queries, ports, IP literals, escapes, non-ASCII,
// paths) are refused.
func TestCheckIssuer_AllowsOnlyWorkspacesOfTheLoginHostsCloud(t *testing.T) {
	const dbx = "https://login.databricks.com"
	for _, c := range []struct {
		loginHost, iss, want string // want "" = refused
	}{
		// login.databricks.com: the commercial clouds and unified hosts.
		{dbx, "https://dbc-1234.cloud.databricks.com/oidc", "https://dbc-1234.cloud.databricks.com"},
		{dbx, "https://dbc-1234.cloud.databricks.com/oidc/", "https://dbc-1234.cloud.databricks.com"},
		{dbx, "https://adb-123.4.azuredatabricks.net/oidc", "https://adb-123.4.azuredatabricks.net"},
		{dbx, "https://123.4.gcp.databricks.com/oidc", "https://123.4.gcp.databricks.com"},
		{dbx, "https://nike.databricks.com/oidc/accounts/abc-123-def", "https://nike.databricks.com"},
		{dbx, "https://DBC-1.Cloud.Databricks.com/oidc", "https://dbc-1.cloud.databricks.com"},
		{dbx + "/", "https://dbc-1.cloud.databricks.com/oidc", "https://dbc-1.cloud.databricks.com"},
		{dbx, "https://evil.com/oidc", ""},
		{dbx, "https://evil.com#.cloud.databricks.com", ""},
		{dbx, "https://evil.com/oidc#.cloud.databricks.com", ""},
		{dbx, "https://cloud.databricks.com.evil.com/oidc", ""},
		{dbx, "https://x.cloud.databricks.com@evil.com/oidc", ""},
		{dbx, "https://evil.com?.cloud.databricks.com", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc?x=1", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc?", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc#", ""},
		{dbx, "https://evildatabricks.com/oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.com:8443/oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.com:443/oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.com", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc/v1/token", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc/../evil", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc/accounts/", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc/accounts/a/b", ""},
		{dbx, "https://dbc-1.cloud.databricks.com//oidc", ""},
		{dbx, "http://dbc-1.cloud.databricks.com/oidc", ""},
		{dbx, "HTTPS://dbc-1.cloud.databricks.com/oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.com./oidc", ""},
		{dbx, "https://dbc-1%2ecloud.databricks.com/oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/%6fidc", ""},
		{dbx, "https://evil.com\\.cloud.databricks.com/oidc", ""},
		{dbx, "https://evil.com\\@dbc-1.cloud.databricks.com/oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.com /oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.com/oidc\n", ""},
		{dbx, "https://dbc-1.cloud.databricks.com\x00.evil.com/oidc", ""},
		{dbx, "https://dbc-1.cloud.databrіcks.com/oidc", ""},               // a Cyrillic і
		{dbx, "https://dbc-1.cloud.databricks.com\u2024evil.com/oidc", ""}, // one dot leader
		{dbx, "https://xn--dbc-1.cloud.databricks.com/oidc", "https://xn--dbc-1.cloud.databricks.com"},
		{dbx, "https://-x.cloud.databricks.com/oidc", ""},
		{dbx, "https://127.0.0.1/oidc", ""},
		{dbx, "http://127.0.0.1:8080/oidc", ""},
		{dbx, "https://localhost/oidc", ""},
		{dbx, "https://[::1]/oidc", ""},
		{dbx, "https://10.0.0.1/oidc", ""},
		{dbx, "https://2130706433/oidc", ""},
		{dbx, "https://databricks.com.123/oidc", ""},
		{dbx, "https://dbc-1.cloud.databricks.us/oidc", ""}, // a sovereign cloud has its own login host
		{dbx, "https://adb-1.databricks.azure.cn/oidc", ""}, // as above
		{dbx, "//dbc-1.cloud.databricks.com/oidc", ""},
		{dbx, "dbc-1.cloud.databricks.com/oidc", ""},
		{dbx, "", ""},

		// A sovereign cloud's login host: its own zone only.
		{"https://login.cloud.databricks.us", "https://dbc-1.cloud.databricks.us/oidc", "https://dbc-1.cloud.databricks.us"},
		{"https://login.cloud.databricks.us", "https://dbc-1.cloud.databricks.com/oidc", ""},
		{"https://login.databricks.azure.cn", "https://adb-1.2.databricks.azure.cn/oidc", "https://adb-1.2.databricks.azure.cn"},
		{"https://login.databricks.azure.cn", "https://adb-1.azuredatabricks.net/oidc", ""},
		{"https://login.databricks.azure.us", "https://adb-1.databricks.azure.us/oidc", "https://adb-1.databricks.azure.us"},
		{"https://login.databricks.azure.us", "https://adb-1.databricks.azure.cn/oidc", ""},

		// A private deployment's login host: its parent domain.
		{"https://login.corp.example", "https://ws-1.corp.example/oidc", "https://ws-1.corp.example"},
		{"https://login.corp.example", "https://a.b.corp.example/oidc", "https://a.b.corp.example"},
		{"https://login.corp.example", "https://corp.example.evil.com/oidc", ""},
		{"https://login.corp.example", "https://other.example/oidc", ""},
		{"https://login.corp.example", "https://dbc-1.cloud.databricks.com/oidc", ""},
		{"https://corp.example", "https://corp.example/oidc", "https://corp.example"},
		{"https://corp.example", "https://ws.corp.example/oidc", "https://ws.corp.example"},
		{"https://corp.example", "https://evil.example/oidc", ""},

		// A loopback login host (the emulator): its own origin only.
		{"http://127.0.0.1:5000/login", "http://127.0.0.1:5000/oidc", "http://127.0.0.1:5000"},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5000/oidc/accounts/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "http://127.0.0.1:5000"},
		{"http://localhost:5000/login", "http://localhost:5000/oidc", "http://localhost:5000"},
		{"http://[::1]:5000/login", "http://[::1]:5000/oidc", "http://[::1]:5000"},
		{"http://127.0.0.1:5000/login", "http://127.0.0.1:6000/oidc", ""},
		{"http://127.0.0.1:5000/login", "http://localhost:5000/oidc", ""},
		{"http://127.0.0.1:5000/login", "http://[::1]:5000/oidc", ""},
		{"http://127.0.0.1:5000/login", "http://127.0.0.2:5000/oidc", ""},
		{"http://127.0.0.1:5000/login", "https://127.0.0.1:5000/oidc", ""},
		{"http://127.0.0.1:5000/login", "http://127.0.0.1/oidc", ""},
		{"http://127.0.0.1:5000/login", "https://dbc-1.cloud.databricks.com/oidc", ""},
		{"http://127.0.0.1:5000/login", "http://127.0.0.1:5000@127.0.0.1:6000/oidc", ""},
		{"http://127.0.0.1:5000/login", "http://127.0.0.1:6000/oidc#127.0.0.1:5000", ""},
		{"http://127.0.0.1:5000/login", "http://127.0.0.1:5000/evil", ""},

		// A login host that is not https is no login host.
		{"http://login.databricks.com", "https://dbc-1.cloud.databricks.com/oidc", ""},
	} {
		got, err := CheckIssuer(c.loginHost, c.iss)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("CheckIssuer(%q, %q) = %q, %v; want %q", c.loginHost, c.iss, got, err, c.want)
			continue
		}
		if err == nil {
			continue
		}
		var ie *IssuerError
		if !errors.Is(err, ErrUntrustedIssuer) || !errors.As(err, &ie) || !strings.Contains(err.Error(), "not completed") {
			t.Errorf("CheckIssuer(%q, %q): %v is not an IssuerError", c.loginHost, c.iss, err)
		}
		if u, perr := url.Parse(c.iss); perr == nil && u.Host != "" && ie != nil && ie.IssuerHost != u.Host {
			t.Errorf("CheckIssuer(%q, %q): the error names %q, not the issuer's host", c.loginHost, c.iss, ie.IssuerHost)
		}
	}
}

// HostFromIssuer and ExchangeAtIssuer, which know no login host, apply the rule of
// the default one: a forged issuer gets nothing.
func TestExchangeAtIssuer_RefusesIssuerOutsideDatabricksDomains(t *testing.T) {
	srv, hits := trap(t)
	for _, iss := range []string{srv.URL + "/oidc", "https://evil.com/oidc", "https://x.cloud.databricks.com@evil.com/oidc"} {
		if _, err := HostFromIssuer(iss); !errors.Is(err, ErrUntrustedIssuer) {
			t.Errorf("HostFromIssuer(%q): %v", iss, err)
		}
		_, _, err := ExchangeAtIssuer(context.Background(), srv.Client(), iss, "client", "code", "VERIFIER-SECRET", "http://localhost:8020")
		if !errors.Is(err, ErrUntrustedIssuer) || strings.Contains(err.Error(), "VERIFIER-SECRET") {
			t.Errorf("ExchangeAtIssuer(%q): %v", iss, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the forged issuer got %d requests", n)
	}
}

// Whatever iss is, an issuer the rule allows is a bare workspace origin inside the
// login host's domains (or the loopback login host's own origin), and the token
// endpoint built from it stays on that origin.
func FuzzCheckIssuer(f *testing.F) {
	for _, s := range []string{
		"https://dbc-1.cloud.databricks.com/oidc", "https://nike.databricks.com/oidc/accounts/abc-1",
		"https://x.cloud.databricks.com@evil.com/oidc", "https://evil.com#.cloud.databricks.com",
		"http://127.0.0.1:5000/oidc", "http://127.0.0.1:6000/oidc", "https://adb-1.azuredatabricks.net/oidc/",
	} {
		f.Add("https://login.databricks.com", s)
		f.Add("http://127.0.0.1:5000/login", s)
	}
	f.Fuzz(func(t *testing.T, loginHost, iss string) {
		host, err := CheckIssuer(loginHost, iss)
		if err != nil {
			return
		}
		if !strings.HasPrefix(iss, host+"/oidc") {
			if !strings.HasPrefix(strings.ToLower(iss), host+"/oidc") {
				t.Fatalf("%q allowed as %q", iss, host)
			}
		}
		tok, err := url.Parse(strings.TrimRight(iss, "/") + "/v1/token")
		if err != nil || !strings.EqualFold(tok.Scheme+"://"+tok.Host, host) || tok.User != nil || tok.RawQuery != "" || tok.Fragment != "" {
			t.Fatalf("%q: the token endpoint %v is not on %q", iss, tok, host)
		}
		lh, _ := url.Parse(loginHost)
		if lh == nil {
			t.Fatalf("%q allowed for login host %q", iss, loginHost)
		}
		if h := tok.Hostname(); h == "localhost" || strings.HasPrefix(h, "127.") || strings.Contains(h, ":") {
			if !strings.EqualFold(lh.Scheme+"://"+lh.Host, host) {
				t.Fatalf("loopback %q allowed for login host %q", iss, loginHost)
			}
		}
	})
}

// A Postgres host read back from the settings store is the cloud's only when it is
// in the workspace's DNS zones (loopback only for a loopback workspace).
func TestInWorkspaceCloud_OnlyTheWorkspacesZones(t *testing.T) {
	for _, c := range []struct {
		workspace, host string
		want            bool
	}{
		{"https://dbc-1.cloud.databricks.com", "instance-1.database.cloud.databricks.com", true},
		{"https://dbc-1.cloud.databricks.com", "ep-1.database.us-east-1.cloud.databricks.com:5432", true},
		{"https://adb-1.2.azuredatabricks.net", "instance-1.database.azuredatabricks.net", true},
		{"https://dbc-1.cloud.databricks.us", "instance-1.database.cloud.databricks.us", true},
		{"https://dbc-1.cloud.databricks.us", "instance-1.database.cloud.databricks.com", false},
		{"https://dbc-1.cloud.databricks.com", "evil.example.com", false},
		{"https://dbc-1.cloud.databricks.com", "databricks.com.evil.example", false},
		{"https://dbc-1.cloud.databricks.com", "127.0.0.1", false},
		{"https://dbc-1.cloud.databricks.com", "localhost", false},
		{"https://dbc-1.cloud.databricks.com", "10.0.0.1", false},
		{"http://127.0.0.1:8080", "localhost:5432", true},
		{"http://127.0.0.1:8080", "127.0.0.1", true},
		{"http://127.0.0.1:8080", "db.example.com", false},
		{"https://ws.corp.example.com", "pg.corp.example.com", true},
		{"https://ws.corp.example.com", "pg.other.example.com", false},
	} {
		if got := InWorkspaceCloud(c.workspace, c.host); got != c.want {
			t.Errorf("InWorkspaceCloud(%q, %q) = %v, want %v", c.workspace, c.host, got, c.want)
		}
	}
}

// Two URLs are of one origin only with the same scheme, host and port.
func TestSameOrigin_SchemeHostAndPort(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"https://h.example.com/oidc", "https://H.example.com", true},
		{"https://h.example.com:443/oidc", "https://h.example.com", true},
		{"http://127.0.0.1:1/oidc", "http://127.0.0.1:2", false},
		{"http://h.example.com/oidc", "https://h.example.com", false},
		{"https://evil.example.com/oidc", "https://h.example.com", false},
		{"https://u@h.example.com/oidc", "https://h.example.com", false},
		{"", "https://h.example.com", false},
	} {
		if got := SameOrigin(c.a, c.b); got != c.want {
			t.Errorf("SameOrigin(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// A private deployment's login host whose parent domain is a public suffix (an
// ICANN one such as co.uk, or a private one such as github.io, where anyone may
// register a name) does not make every name under that suffix a workspace: a
// callback naming an attacker's host under the suffix is refused (so the code and
// the PKCE verifier go nowhere), and so is every issuer of a login host that is
// itself a public suffix. The error names the login host.
func TestCheckIssuer_PublicSuffixParentIsNoWorkspaceZone(t *testing.T) {
	srv, hits := trap(t)
	for _, c := range []struct {
		loginHost, iss, want string // want "" = refused
	}{
		{"https://login.co.uk", "https://attacker.co.uk/oidc", ""},
		{"https://login.co.uk", "https://ws.attacker.co.uk/oidc", ""},
		{"https://login.co.uk", "https://co.uk/oidc", ""},
		{"https://login.co.uk", "https://ws.login.co.uk/oidc", "https://ws.login.co.uk"},
		{"https://login.co.uk", "https://login.co.uk/oidc", "https://login.co.uk"},
		{"https://ws.github.io", "https://evil.github.io/oidc", ""},
		{"https://ws.github.io", "https://github.io/oidc", ""},
		{"https://ws.github.io", "https://a.ws.github.io/oidc", "https://a.ws.github.io"},
		{"https://login.herokuapp.com", "https://evil.herokuapp.com/oidc", ""},
		{"https://login.s3.amazonaws.com", "https://evil.s3.amazonaws.com/oidc", ""},
		{"https://login.pvt.k12.ma.us", "https://evil.pvt.k12.ma.us/oidc", ""},
		{"https://co.uk", "https://attacker.co.uk/oidc", ""},
		{"https://co.uk", "https://co.uk/oidc", ""},
		{"https://github.io", "https://evil.github.io/oidc", ""},
		// A registrable parent still allows its names.
		{"https://login.corp.co.uk", "https://ws.corp.co.uk/oidc", "https://ws.corp.co.uk"},
		{"https://login.corp.co.uk", "https://attacker.co.uk/oidc", ""},
		{"https://login.corp.example.com", "https://ws.corp.example.com/oidc", "https://ws.corp.example.com"},
		{"https://login.corp.example.com", "https://ws.example.com/oidc", ""},
	} {
		got, err := CheckIssuer(c.loginHost, c.iss)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("CheckIssuer(%q, %q) = %q, %v; want %q", c.loginHost, c.iss, got, err, c.want)
			continue
		}
		if err != nil {
			lh, _ := url.Parse(c.loginHost)
			if !errors.Is(err, ErrUntrustedIssuer) || !strings.Contains(err.Error(), lh.Host) {
				t.Errorf("CheckIssuer(%q, %q): %v does not name the login host", c.loginHost, c.iss, err)
			}
			// The exchange with the forged issuer sends nothing anywhere.
			_, _, xerr := ExchangeAtIssuerFor(context.Background(), srv.Client(), c.loginHost, c.iss, "client", "CODE-SECRET", "VERIFIER-SECRET", "http://localhost:8020")
			if !errors.Is(xerr, ErrUntrustedIssuer) || strings.Contains(xerr.Error(), "VERIFIER-SECRET") || strings.Contains(xerr.Error(), "CODE-SECRET") {
				t.Errorf("ExchangeAtIssuerFor(%q, %q): %v", c.loginHost, c.iss, xerr)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the forged issuers got %d requests", n)
	}
	// A login host that is itself a public suffix says so.
	_, err := CheckIssuer("https://github.io", "https://evil.github.io/oidc")
	if err == nil || !strings.Contains(err.Error(), "public suffix") || !strings.Contains(err.Error(), "LoginHost") {
		t.Errorf("CheckIssuer(github.io): %v does not say the LoginHost is a public suffix", err)
	}
	if err := CheckLoginHost("https://github.io"); err == nil || !strings.Contains(err.Error(), "github.io") {
		t.Errorf("CheckLoginHost(github.io) = %v", err)
	}
	for _, ok := range []string{"https://login.co.uk", "https://login.databricks.com", "https://login.corp.example", "http://127.0.0.1:5000"} {
		if err := CheckLoginHost(ok); err != nil {
			t.Errorf("CheckLoginHost(%q) = %v", ok, err)
		}
	}
}

// A host read back from the store is not the workspace's merely for sharing a
// public suffix with it.
func TestInWorkspaceCloud_PublicSuffixParentIsNoZone(t *testing.T) {
	for _, c := range []struct {
		workspace, host string
		want            bool
	}{
		{"https://ws.github.io", "evil.github.io", false},
		{"https://ws.github.io", "pg.ws.github.io", true},
		{"https://ws.co.uk", "attacker.co.uk", false},
		{"https://ws.co.uk", "pg.ws.co.uk", true},
		{"https://ws.corp.co.uk", "pg.corp.co.uk", true},
		{"https://co.uk", "attacker.co.uk", false},
	} {
		if got := InWorkspaceCloud(c.workspace, c.host); got != c.want {
			t.Errorf("InWorkspaceCloud(%q, %q) = %v, want %v", c.workspace, c.host, got, c.want)
		}
	}
}
