package lakebase_test

import (
	"context"
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
