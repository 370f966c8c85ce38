package lakebase_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
)

func TestTimeZone_ValidatedWhenParsed(t *testing.T) {
	for _, tz := range []string{"Mars/Olympus", "Local", "UTC'; DROP TABLE x; --", "+25:00"} {
		var ce *lakebase.ConfigError
		_, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;TimeZone='" + strings.ReplaceAll(tz, "'", "''") + "'")
		if !errors.As(err, &ce) || ce.Property != "TimeZone" {
			t.Fatalf("%q: %v", tz, err)
		}
	}
	for _, tz := range []string{"UTC", "America/New_York", "Europe/Paris"} {
		if _, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;TimeZone=" + tz); err != nil {
			t.Fatalf("%q: %v", tz, err)
		}
	}
}

// A refused SSLMode is named once, not repeated.
func TestParseDSN_RefusedSSLModeIsNamedOnce(t *testing.T) {
	_, err := lakebase.ParseDSN(emu.OAuthClientDSN("SSLMode=disable"))
	if err == nil || strings.Count(err.Error(), "disable") != 1 {
		t.Fatalf("SSLMode=disable: %v", err)
	}
}

// UseSSL=false asks for plain text: refused whenever a token is the password.
func TestUseSSLFalse_RefusedForTokens(t *testing.T) {
	var ce *lakebase.ConfigError
	if _, err := lakebase.ParseDSN("DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b;UseSSL=false"); !errors.As(err, &ce) || ce.Property != "SSLMode" {
		t.Fatalf("UseSSL=false with OAuth: %v", err)
	}
	cfg, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;UseSSL=false")
	if err != nil || cfg.SSLMode != lakebase.SSLDisable {
		t.Fatalf("UseSSL=false on loopback: %v %v", cfg, err)
	}
}

func TestSSLServerCertSystem_ImpliesVerifyFull(t *testing.T) {
	cfg, err := lakebase.ParseDSN("DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b;SSLServerCert=system")
	if err != nil || cfg.SSLMode != lakebase.SSLVerifyFull {
		t.Fatalf("%v %v", cfg, err)
	}
	for _, mode := range []string{"require", "verify-ca"} {
		var ce *lakebase.ConfigError
		if _, err := lakebase.ParseDSN("DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b;SSLServerCert=system;SSLMode=" + mode); !errors.As(err, &ce) || ce.Property != "SSLMode" {
			t.Fatalf("%s with system: %v", mode, err)
		}
	}
}

func TestQueryExecMode_ParsedInBothForms(t *testing.T) {
	for _, dsn := range []string{
		"AuthScheme=Password;Server=localhost;User=u;Password=p;QueryExecMode=Simple_Protocol;StatementCacheCapacity=0;DescriptionCacheCapacity=16",
		"lakebase://u:p@localhost/db?AuthScheme=Password&default_query_exec_mode=simple_protocol&statement_cache_capacity=0&description_cache_capacity=16",
	} {
		cfg, err := lakebase.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.QueryExecMode != "simple_protocol" || cfg.StatementCacheCapacity == nil || *cfg.StatementCacheCapacity != 0 ||
			cfg.DescriptionCacheCapacity == nil || *cfg.DescriptionCacheCapacity != 16 {
			t.Fatalf("%s: %+v", dsn, cfg)
		}
		again, err := lakebase.ParseDSN(cfg.FormatDSN())
		if err != nil || again.QueryExecMode != "simple_protocol" || *again.StatementCacheCapacity != 0 {
			t.Fatalf("FormatDSN does not round-trip: %v", err)
		}
	}
	for dsn, prop := range map[string]string{
		"AuthScheme=Password;Server=localhost;User=u;QueryExecMode=fast":                                         "QueryExecMode",
		"AuthScheme=Password;Server=localhost;User=u;StatementCacheCapacity=-1":                                  "StatementCacheCapacity",
		"AuthScheme=Password;Server=localhost;User=u;AllowPreparedStatement=false;QueryExecMode=cache_statement": "QueryExecMode",
	} {
		var ce *lakebase.ConfigError
		if _, err := lakebase.ParseDSN(dsn); !errors.As(err, &ce) || ce.Property != prop {
			t.Fatalf("%s: %v", dsn, err)
		}
	}
}
