package lakebase_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/lakebase-go/lakebase"
)

// Against the emulator, whose CA the system does not trust, SSLServerCert=system
// refuses the server; a process whose system roots hold that CA (SSL_CERT_FILE)
// connects, and CheckServerCertificate tells the two apart.
func TestSSLServerCertSystem_VerifiesAgainstTheSystemRoots(t *testing.T) {
	needServers(t)
	db, c := newDB(t, emu.OAuthClientDSN("SSLServerCert=system"))
	if err := db.Ping(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server the system does not trust was accepted: %v", err)
	}
	rep, err := c.CheckServerCertificate(context.Background())
	if err != nil || rep.SystemTrusted || rep.VerifyError == "" || rep.Host != emu.Host {
		t.Fatalf("report %+v, %v", rep, err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=system-roots", "SSL_CERT_FILE="+emu.CAFile, "SSL_CERT_DIR=/nonexistent",
		"LAKEBASE_HELPER_DSN="+emu.OAuthClientDSN("SSLServerCert=system"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "trusted=true connected=true") {
		t.Fatalf("with the CA in the system roots: %v\n%s", err, out)
	}
}

func helperSystemRoots() int {
	c, err := lakebase.NewConnector(os.Getenv("LAKEBASE_HELPER_DSN"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	rep, err := c.CheckServerCertificate(context.Background())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	pingErr := db.Ping()
	fmt.Printf("trusted=%v connected=%v %v\n", rep.SystemTrusted, pingErr == nil, pingErr)
	return 0
}

// PGHOST and PGPORT cannot redirect a database named by Endpoint or Instance; the
// driver says it ignored them. With only Server, PGHOST still fills it.
func TestEnvironment_PGHostIgnoredWhenTheDatabaseIsNamed(t *testing.T) {
	t.Setenv("PGHOST", "attacker.example")
	t.Setenv("PGPORT", "6543")
	var mu sync.Mutex
	var buf bytes.Buffer
	c, err := lakebase.NewConnector(emu.OAuthClientDSN(), lakebase.WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cfg := c.Config(); cfg.Server != "" || cfg.Port == 6543 {
		t.Fatalf("Server %q Port %d from the environment", cfg.Server, cfg.Port)
	}
	l, err := c.Login(context.Background())
	if err != nil || l.Host != emu.Host {
		t.Fatalf("login host %q, %v", l.Host, err)
	}
	mu.Lock()
	logged := buf.String()
	mu.Unlock()
	if !strings.Contains(logged, "PGHOST") || !strings.Contains(logged, "PGPORT") {
		t.Fatalf("nothing logged:\n%s", logged)
	}
	cfg, err := lakebase.ParseDSN("DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b")
	if err != nil || cfg.Server != "attacker.example" {
		t.Fatalf("Server-only: %q %v", cfg.Server, err)
	}
}
