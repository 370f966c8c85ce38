package lakebase_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
)

func TestTimeZone_SetsTheSessionTimeZone(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN("TimeZone=Europe/Paris"))
	var tz string
	if err := db.QueryRow("SHOW TimeZone").Scan(&tz); err != nil || tz != "Europe/Paris" {
		t.Fatalf("TimeZone %q, %v", tz, err)
	}
	// Through the token pipeline and pgxpool too.
	c, err := lakebase.NewConnector(emu.OAuthClientDSN("TimeZone=Asia/Tokyo"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pool := poolOf(t, c)
	if err := pool.QueryRow(context.Background(), "SHOW TimeZone").Scan(&tz); err != nil || tz != "Asia/Tokyo" {
		t.Fatalf("pool TimeZone %q, %v", tz, err)
	}
}

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
