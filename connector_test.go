package lakebase_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

func TestConnectOnOpen_FailsAtStartUp(t *testing.T) {
	needServers(t)
	// A wrong secret fails in NewConnector (and so in sql.Open), not at the first query.
	if _, err := lakebase.NewConnector(emu.OAuthClientDSN("OAuthClientSecret=wrong", "ConnectOnOpen=true")); err == nil ||
		!strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
	// A role that does not exist fails too (the login itself is tried).
	if _, err := lakebase.NewConnector(passwordDSN("User=nobody_here;ConnectOnOpen=true")); !errors.Is(err, lakebase.ErrLoginRefused) {
		t.Fatalf("unknown role: %v", err)
	}
	before := emu.Count(lakebasetest.EPLogin)
	c, err := lakebase.NewConnector(emu.OAuthClientDSN("ConnectOnOpen=true"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := emu.Count(lakebasetest.EPLogin) - before; n != 1 {
		t.Fatalf("%d logins at construction, want 1", n)
	}
	// Without it, nothing happens until the first statement.
	before = emu.Count(lakebasetest.EPLogin)
	c2, err := lakebase.NewConnector(emu.OAuthClientDSN("OAuthClientSecret=wrong"))
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if emu.Count(lakebasetest.EPLogin) != before {
		t.Fatal("a login happened without ConnectOnOpen")
	}
}
