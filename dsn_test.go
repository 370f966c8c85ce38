package lakebase

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

const baseM2M = "DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=cid;OAuthClientSecret=sec;"

func TestParseDSN_Grammar(t *testing.T) {
	cases := []struct {
		name  string
		dsn   string
		check func(c *Config) bool
	}{
		{"doubled single quote and semicolon", baseM2M + "AuthScheme=Password;Server=h;User=u;Password='a''b;c'",
			func(c *Config) bool { return c.Password == "a'b;c" }},
		{"double quotes", baseM2M + `ApplicationName="x;y"`,
			func(c *Config) bool { return c.ApplicationName == "x;y" }},
		{"doubled double quote", baseM2M + `ApplicationName="say ""hi"""`,
			func(c *Config) bool { return c.ApplicationName == `say "hi"` }},
		{"equals inside value", baseM2M + "ApplicationName=a=b=c",
			func(c *Config) bool { return c.ApplicationName == "a=b=c" }},
		{"spaced and cased names", "Auth Scheme=oauthclient; databricks instance = dbc-1.cloud.databricks.com ; OAUTHCLIENTID=cid;oauth client secret=sec",
			func(c *Config) bool {
				return c.AuthScheme == AuthOAuthClient && c.DatabricksInstance == "https://dbc-1.cloud.databricks.com" && c.OAuthClientID == "cid" && c.OAuthClientSecret == "sec"
			}},
		{"whitespace trimmed, quoted edges kept", baseM2M + "ApplicationName=  app  ;Database=' db '",
			func(c *Config) bool { return c.ApplicationName == "app" && c.Database == " db " }},
		{"last duplicate wins", baseM2M + "Server=first;server=last",
			func(c *Config) bool { return c.Server == "last" }},
		{"jdbc:cdata:lakebase: prefix", "jdbc:cdata:lakebase:" + baseM2M,
			func(c *Config) bool { return c.OAuthClientID == "cid" }},
		{"jdbc:lakebase: prefix", "JDBC:Lakebase:" + baseM2M,
			func(c *Config) bool { return c.OAuthClientID == "cid" }},
		{"trailing and repeated semicolons", baseM2M + ";;Port=6543;",
			func(c *Config) bool { return c.Port == 6543 }},
		{"Workspace alias and https URL", "Workspace=https://dbc-2.cloud.databricks.com/;OAuthClientId=c;OAuthClientSecret=s",
			func(c *Config) bool { return c.DatabricksInstance == "https://dbc-2.cloud.databricks.com" }},
		{"http for loopback", "DatabricksInstance=http://127.0.0.1:8080;OAuthClientId=c;OAuthClientSecret=s",
			func(c *Config) bool { return c.DatabricksInstance == "http://127.0.0.1:8080" }},
		{"defaults for OAuthClient", baseM2M,
			func(c *Config) bool {
				return c.AuthScheme == AuthOAuthClient && c.Port == 5432 && c.Database == "databricks_postgres" &&
					c.SSLMode == SSLRequire && c.InitiateOAuth == InitiateGetAndRefresh && c.Scope == "all-apis" &&
					c.Timeout == 30*time.Second && c.ApplicationName == "lakebase-go/"+Version
			}},
		{"defaults for OAuthPKCE", "AuthScheme=OAuthPKCE;DatabricksInstance=dbc-1.cloud.databricks.com",
			func(c *Config) bool {
				return c.OAuthClientID == "databricks-cli" && c.Scope == "all-apis offline_access" &&
					c.InitiateOAuth == InitiateOff && c.CallbackURL == "http://localhost:8020"
			}},
		{"booleans-free numbers", baseM2M + "OAuthExpiresIn=3600;OAuthTokenTimestamp=1700000000000;Timeout=0;Verbosity=5",
			func(c *Config) bool {
				return c.OAuthExpiresIn == time.Hour && c.OAuthTokenTimestamp.UnixMilli() == 1700000000000 && c.Timeout == NoTimeout && c.Verbosity == 5
			}},
		{"ignored CData properties", baseM2M + "Visibility=SELECT;BrowsableSchemas=public",
			func(c *Config) bool {
				return c.Ignored["Visibility"] == "SELECT" && c.Ignored["BrowsableSchemas"] == "public"
			}},
		{"InitiateOAuth any case", baseM2M + "InitiateOAuth=refresh",
			func(c *Config) bool { return c.InitiateOAuth == InitiateRefresh }},
		{"endpoint path", baseM2M + "Endpoint=projects/p/branches/main/endpoints/ep",
			func(c *Config) bool { return c.Endpoint == "projects/p/branches/main/endpoints/ep" }},
		{"URL form", "lakebase://app%40x.com@db.example.com:6000/mydb?AuthScheme=OAuthPKCE&DatabricksInstance=dbc-1.cloud.databricks.com&Instance=inst",
			func(c *Config) bool {
				return c.User == "app@x.com" && c.Server == "db.example.com" && c.Port == 6000 && c.Database == "mydb" && c.Instance == "inst" && c.AuthScheme == AuthOAuthPKCE
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseDSN(tc.dsn)
			if err != nil {
				t.Fatalf("ParseDSN: %v", err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config: %s", c)
			}
		})
	}
}

func TestParseDSN_Errors(t *testing.T) {
	cases := []struct {
		name, dsn, want string
	}{
		{"unterminated quote", baseM2M + "Password='secret", "Password has an unterminated quoted value"},
		{"text after closing quote", baseM2M + "Password='secret'junk;", "Password has text after the closing quote"},
		{"empty name", baseM2M + "=secret;", "empty name"},
		{"pair without =", baseM2M + "bad;", "has no '='"},
		{"a property name without =", baseM2M + "ReadOnly;", "ReadOnly has no '='"},
		{"unknown with suggestion", baseM2M + "OAuthClientSecrett=x", `unknown property (did you mean "OAuthClientSecret"?)`},
		{"unknown spaced", baseM2M + "Auth Schem=x", `did you mean "AuthScheme"?`},
		{"bad scheme", "AuthScheme=Kerberos", "AuthScheme=\"Kerberos\" must be one of"},
		{"bad port", baseM2M + "Port=70000", "Port=\"70000\" must be a port number"},
		{"bad timeout", baseM2M + "Timeout=soon", "Timeout=\"soon\" must be a number of seconds"},
		{"bad verbosity", baseM2M + "Verbosity=9", "Verbosity"},
		{"bad expires", baseM2M + "OAuthExpiresIn=x", "OAuthExpiresIn"},
		{"bad timestamp", baseM2M + "OAuthTokenTimestamp=-5", "OAuthTokenTimestamp"},
		{"workspace missing", "OAuthClientId=c;OAuthClientSecret=s", "DatabricksInstance is required"},
		{"http non-loopback", "DatabricksInstance=http://dbc-1.cloud.databricks.com;OAuthClientId=c;OAuthClientSecret=s", "must use https"},
		{"client id missing", "DatabricksInstance=dbc-1.cloud.databricks.com", "OAuthClientId is required"},
		{"secret missing", "DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=c", "OAuthClientSecret is required"},
		{"sslmode disable with token", baseM2M + "SSLMode=disable", "refused when an OAuth token is the password"},
		{"sslmode prefer with remote password", "AuthScheme=Password;Server=db.example.com;User=u;Password=p;SSLMode=prefer", "allowed only for loopback"},
		{"bad sslmode", baseM2M + "SSLMode=sometimes", "SSLMode"},
		{"instance and endpoint", baseM2M + "Instance=i;Endpoint=projects/p/branches/b/endpoints/e", "cannot be set together"},
		{"bad endpoint", baseM2M + "Endpoint=ep", "projects/<project>"},
		{"password needs server", "AuthScheme=Password;User=u;Password=p", "Server is required"},
		{"bad callback", "AuthScheme=OAuthPKCE;DatabricksInstance=dbc-1.cloud.databricks.com;CallbackURL=localhost", "CallbackURL"},
		{"bad URL form", "lakebase://u:p@h:notaport/db", "malformed"},
		{"URL unknown parameter", "lakebase://h/db?Nope=1", "unknown property"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDSN(tc.dsn)
			if err == nil {
				t.Fatalf("ParseDSN(%q) succeeded", tc.dsn)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
		})
	}
}

// secretValues appear only in secret properties of secretDSN.
var secretValues = []string{"S3cr3t-pw", "S3cr3t-client", "S3cr3t-access", "S3cr3t-refresh", "S3cr3t-code"}

const secretDSN = "AuthScheme=OAuthClient;DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=cid;" +
	"Password=S3cr3t-pw;OAuthClientSecret=S3cr3t-client;OAuthAccessToken=S3cr3t-access;" +
	"OAuthRefreshToken=S3cr3t-refresh;OAuthVerifier=S3cr3t-code"

func TestConfig_RedactsSecrets(t *testing.T) {
	c, err := ParseDSN(secretDSN)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("cfg", "config", c)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("cfg", "config", c)
	outputs := []string{
		c.String(), fmt.Sprint(c), fmt.Sprintf("%v|%+v|%s|%q|%#v", c, c, c, c, c),
		fmt.Sprintf("%v", *c), logBuf.String(),
	}
	for _, out := range outputs {
		for _, s := range secretValues {
			if strings.Contains(out, s) {
				t.Fatalf("output holds secret %q: %s", s, out)
			}
		}
	}
	if !strings.Contains(c.String(), "OAuthClientSecret=********") || !strings.Contains(c.String(), "OAuthClientId=cid") {
		t.Fatalf("String() = %s", c.String())
	}
	// FormatDSN keeps them, so the connection string round-trips.
	if !strings.Contains(c.FormatDSN(), "S3cr3t-client") {
		t.Fatal("FormatDSN lost a secret")
	}
}

func TestParseDSN_ErrorsNeverHoldSecrets(t *testing.T) {
	bad := []string{
		"Password='S3cr3t-pw",                 // unterminated
		"Password='S3cr3t-pw'tail",            // text after quote
		"OAuthClientSecret='S3cr3t-client'x;", // text after quote
		"lakebase://u:S3cr3t-pw@h:bad/db",     // malformed URL holding a password
		"lakebase://u:S3cr3t-pw@h/db?Port=x",  // bad property in URL with a password
		secretDSN + ";SSLMode=disable",        // validation error
		secretDSN + ";Bogus=1",                // unknown property
		"S3cr3t-code;" + secretDSN,            // a pair without = (the value is echoed, it is not a property value)
	}
	for _, dsn := range bad {
		_, err := ParseDSN(dsn)
		if err == nil {
			t.Fatalf("ParseDSN(%q) succeeded", dsn)
		}
		for _, s := range secretValues[:4] {
			if strings.Contains(err.Error(), s) && !strings.HasPrefix(dsn, s) {
				t.Fatalf("error for %q holds secret %q: %v", dsn, s, err)
			}
		}
	}
}

func TestConfig_FormatDSNRoundTrips(t *testing.T) {
	for _, dsn := range []string{
		secretDSN,
		baseM2M + "Password=' lead;'' q\"';ApplicationName=a=b;Visibility=SELECT,INSERT;Timeout=0;OAuthExpiresIn=-1",
		"AuthScheme=OAuthPKCE;DatabricksInstance=http://localhost:9999;CallbackURL=http://127.0.0.1:8021/cb;OAuthSettingsLocation=memory://x",
	} {
		c1, err := ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseDSN(c1.FormatDSN())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", c1.FormatDSN(), err)
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v", c1, c2)
		}
	}
}

func FuzzParseDSN(f *testing.F) {
	seeds := []string{
		secretDSN, baseM2M, "Password='a''b;c'", `X="x;y"`, "a=b=c", "jdbc:cdata:lakebase:Server=first;server=last",
		"Password='secret", "Password='secret'junk;", "=secret;", "bad;", "Auth Scheme = Password ; Server=h;User=u",
		"lakebase://u:p@h:1/db?AuthScheme=Password", "lakebase://%zz", baseM2M + "Timeout=0;OAuthExpiresIn=-1",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		c, err := ParseDSN(dsn)
		if err != nil {
			_ = err.Error()
			return
		}
		_ = c.String()
		again, err := ParseDSN(c.FormatDSN())
		if err != nil {
			t.Fatalf("FormatDSN output does not parse: %v\ninput: %q\nformatted: %q", err, dsn, c.FormatDSN())
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip differs:\ninput: %q\n%#v\n%#v", dsn, c, again)
		}
	})
}

// A PostgreSQL URL or a libpq string pasted as the connection string is refused
// with the forms this driver reads, quoting none of its text (it holds a password).
func TestParseDSN_RefusesPostgresURLsAndLibpqStringsWithoutQuotingThem(t *testing.T) {
	for _, dsn := range []string{
		"postgresql://app:S3CRET@localhost/db?sslmode=require",
		"postgres://app:S3CRET@localhost:5432/db",
		"POSTGRESQL://app:S3CRET@localhost/db",
		"host=localhost port=5432 dbname=db user=app password=S3CRET sslmode=require",
		"  user=app password='S3CRET' host=h",
	} {
		_, err := ParseDSN(dsn)
		if err == nil {
			t.Fatalf("%q was accepted", dsn)
		}
		msg := err.Error()
		if strings.Contains(msg, "S3CRET") || strings.Contains(msg, "localhost") || strings.Contains(msg, "app") && !strings.Contains(msg, "application") {
			t.Errorf("the error quotes the string: %s", msg)
		}
		if !strings.Contains(msg, "CData") || !strings.Contains(msg, "lakebase://") {
			t.Errorf("the error does not name the forms this driver reads: %s", msg)
		}
	}
}

// An unknown name right after a secret (the rest of a password with an unquoted
// ';') and a name that does not look like one are reported by position only.
func TestParseDSN_UnknownNameAfterASecretIsNotEchoed(t *testing.T) {
	for dsn, want := range map[string]string{
		"AuthScheme=Password;Server=h;User=u;Password=ab;SECRETPART55=x": "quote it: Password=",
		"AuthScheme=OAuthClient;OAuthClientSecret=ab;EF77SECRETPART55=x": "OAuthClientSecret",
		"AuthScheme=Password;Server=h;User=u;@@SECRETPART55#=x":          "pair 4",
	} {
		_, err := ParseDSN(dsn)
		if err == nil {
			t.Fatalf("%q was accepted", dsn)
		}
		if strings.Contains(err.Error(), "SECRETPART55") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", dsn, err)
		}
	}
	// A plain unknown name elsewhere is still echoed, with a suggestion.
	_, err := ParseDSN("AuthScheme=Password;Servr=h")
	if err == nil || !strings.Contains(err.Error(), "Servr") || !strings.Contains(err.Error(), "Server") {
		t.Fatalf("a typo is not named: %v", err)
	}
	// libpq's names get this driver's.
	_, err = ParseDSN("AuthScheme=Password;host=h;User=u")
	if err == nil || !strings.Contains(err.Error(), "Server") || strings.Contains(err.Error(), "Port") {
		t.Fatalf("host is not answered with Server: %v", err)
	}
}

// QuoteDSNValue writes any value so that it parses back to itself: as a plain
// property (User) and as a secret (Password), at the end of a string and before
// another pair.
func FuzzQuoteDSNValue(f *testing.F) {
	for _, s := range []string{"", "plain", `we"ird; DROP ROLE x; --`, "a'b;c", " edge ", "\tx\t", "'", `"`, "''", "x=y", "a;b", "é;ü", "jdbc:lakebase:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		q := QuoteDSNValue(v)
		for _, dsn := range []string{
			"AuthScheme=Password;Server=h;User=" + q + ";Password=" + q,
			"AuthScheme=Password;Server=h;Password=" + q + ";User=" + q + ";Port=5433",
		} {
			c, err := ParseDSN(dsn)
			if err != nil {
				if v == "" {
					return // no user or no password: refused as missing, not misparsed
				}
				t.Fatalf("QuoteDSNValue(%q) = %q does not parse: %v", v, q, err)
			}
			if c.User != v || c.Password != v {
				t.Fatalf("QuoteDSNValue(%q) = %q parses back to User %q, Password %q", v, q, c.User, c.Password)
			}
		}
	})
}
