package lakebase_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
)

// Odd inputs to the exported API are errors, never panics or silent changes.
func TestExportedAPI_OddInputsAreErrors(t *testing.T) {
	c, err := lakebase.NewConnector(emu.OAuthClientDSN(), nil)
	if err != nil {
		t.Fatalf("NewConnector with a nil Option: %v", err)
	}
	c.Close()

	var zero lakebase.Connector
	if _, err := zero.Login(context.Background()); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Login on a zero Connector: %v", err)
	}
	if _, err := zero.Status(context.Background()); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Status on a zero Connector: %v", err)
	}
	if err := zero.Logout(context.Background()); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Logout on a zero Connector: %v", err)
	}
	if _, err := zero.PoolConfig(); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("PoolConfig on a zero Connector: %v", err)
	}
	if err := sql.OpenDB(&zero).Ping(); !errors.Is(err, lakebase.ErrConnectorNotOpened) {
		t.Fatalf("Ping through a zero Connector: %v", err)
	}
	zero.Close()

	for _, port := range []int{70000, -1, 65536} {
		cfg := &lakebase.Config{AuthScheme: lakebase.AuthPassword, Server: "localhost", User: "u", Password: "p", Port: port}
		if _, err := lakebase.NewConnectorFromConfig(cfg); !errors.Is(err, lakebase.ErrConfig) {
			t.Fatalf("Config{Port: %d}: %v", port, err)
		}
	}
}

// A permanent mistake is not retried until Timeout: https against the emulator's
// plain-http port fails at once, saying to write http://.
func TestConnect_HTTPSAgainstAnHTTPServerFailsAtOnceWithAHint(t *testing.T) {
	host := strings.TrimPrefix(emu.URL, "http://")
	dsn := strings.Replace(emu.OAuthClientDSN("Timeout=120"), "DatabricksInstance="+emu.URL, "DatabricksInstance="+host, 1)
	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "write http://") || strings.Contains(err.Error(), "within Timeout") {
		t.Fatalf("https against an http server: %v", err)
	}
}
