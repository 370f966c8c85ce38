// Command lakebase-local runs the Lakebase emulator as a process, for psql and other
// tools and languages: a Databricks workspace (OIDC and the Lakebase APIs) on a
// loopback port and a TLS Postgres front door relaying to a throwaway PostgreSQL.
//
// On start it prints one JSON object on a line of standard output with the
// workspace URL, the Postgres address, the CA file and ready-made identities, then
// serves until SIGINT or SIGTERM, when it stops PostgreSQL and removes its files.
//
//	go run ./cmd/lakebase-local -credential-lifetime 5m
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

// kv collects repeated endpoint=value flags.
type kv map[string]string

func (m kv) String() string { return fmt.Sprint(map[string]string(m)) }
func (m kv) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want endpoint=value, e.g. token=50ms")
	}
	m[k] = val
	return nil
}

func main() {
	var (
		opts     lakebasetest.Options
		verbose  bool
		latency  = kv{}
		errRates = kv{}
	)
	flag.BoolVar(&opts.AutoApprove, "auto-approve", false, "approve logins without showing the consent page")
	flag.DurationVar(&opts.TokenLifetime, "token-lifetime", time.Hour, "lifetime of workspace access tokens")
	flag.DurationVar(&opts.CredentialLifetime, "credential-lifetime", 0, "cap on database credential lifetime (0: the requested ttl, 1h at most)")
	flag.BoolVar(&opts.NoRefreshRotation, "no-refresh-rotation", false, "make refresh tokens reusable instead of single-use")
	flag.BoolVar(&opts.NoReuseDetection, "no-reuse-detection", false, "do not revoke a token family when a rotated refresh token is reused")
	flag.BoolVar(&opts.AutoCreateRoles, "auto-create-roles", false, "create a Postgres role on an identity's first login")
	flag.StringVar(&opts.Database, "database", "databricks_postgres", "database to create")
	flag.Var(latency, "latency", "endpoint=duration: delay requests to an endpoint (repeatable; endpoints: token, authorize, discovery, credentials.autoscaling, credentials.provisioned, instances, endpoints, scim.me)")
	flag.Var(errRates, "error-rate", "endpoint=fraction: fail that share of requests with 503 (repeatable)")
	flag.BoolVar(&verbose, "v", false, "log events on stderr")
	flag.Parse()
	if verbose {
		opts.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "lakebase-local: "+f+"\n", a...) }
	}

	srv, err := lakebasetest.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lakebase-local:", err)
		os.Exit(1)
	}
	for ep, v := range latency {
		d, err := time.ParseDuration(v)
		if err != nil {
			fail(srv, fmt.Errorf("-latency %s=%s: %v", ep, v, err))
		}
		srv.SetLatency(ep, d)
	}
	for ep, v := range errRates {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			fail(srv, fmt.Errorf("-error-rate %s=%s: want a fraction from 0 to 1", ep, v))
		}
		srv.SetErrorRate(ep, r)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	info := map[string]any{
		"workspace":       srv.URL,
		"server":          srv.Host,
		"port":            srv.Port,
		"database":        srv.Database,
		"ca_file":         srv.CAFile,
		"endpoint":        srv.Endpoint,
		"instance":        srv.Instance,
		"client_id":       srv.ServicePrincipal.ClientID,
		"client_secret":   srv.ServicePrincipal.ClientSecret,
		"user":            srv.User.Email,
		"postgres_pid":    srv.PostgresPID(),
		"temp_dirs":       srv.TempDirs(),
		"dsn_oauthclient": srv.OAuthClientDSN(),
		"dsn_oauthpkce":   srv.OAuthPKCEDSN(),
	}
	line, _ := json.Marshal(info)
	fmt.Println(string(line))

	s := <-sig
	fmt.Fprintf(os.Stderr, "lakebase-local: %v: stopping\n", s)
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "lakebase-local:", err)
		os.Exit(1)
	}
}

func fail(srv *lakebasetest.Server, err error) {
	fmt.Fprintln(os.Stderr, "lakebase-local:", err)
	srv.Close()
	os.Exit(2)
}
