// Command lakebase-local runs the Lakebase emulator as a process, for psql and other
// tools and languages: a Databricks workspace (OIDC and the Lakebase APIs) on a
// loopback port and a TLS Postgres front door relaying to a throwaway PostgreSQL.
//
// On start it prints one JSON object on a line of standard output with the
// workspace URL, the Postgres address, the CA file and ready-made identities, then
// serves until SIGINT or SIGTERM, when it stops PostgreSQL and removes its files —
// or, with -data-dir, keeps them for the next start.
//
//	go run ./cmd/lakebase-local -credential-lifetime 5m
//	go run ./cmd/lakebase-local -data-dir ./.lakebase -port 8080 -pg-port 5433
package main

import (
	"crypto/rand"
	"encoding/hex"
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
		noRole   bool
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
	flag.IntVar(&opts.InvalidTokenStatus, "invalid-token-status", 403, "HTTP status answering an expired, revoked or unknown workspace token: 403 (as Databricks mostly does) or 401")
	flag.DurationVar(&opts.ScaleToZero, "scale-to-zero", 0, "suspend the endpoint after this long without a session (0: never); it then reports IDLE and wakes on connect")
	flag.DurationVar(&opts.IdleSessionTimeout, "idle-session-timeout", 0, "end a session idle between transactions this long, with FATAL 57P01, as Lakebase does after 24h (0: never)")
	flag.DurationVar(&opts.MaxSessionLifetime, "max-session-lifetime", 0, "end a session this old at its next idle moment, with FATAL 57P01 (Lakebase: 3 days; 0: never)")
	flag.DurationVar(&opts.WakeDelay, "wake-delay", time.Second, "how long a suspended endpoint takes to wake (57P03 meanwhile)")
	flag.IntVar(&opts.PageSize, "page-size", lakebasetest.DefaultPageSize, "items per page of list calls (with next_page_token)")
	flag.IntVar(&opts.DecoyProjects, "decoy-projects", 0, "extra projects and instances listed before the real ones (a large workspace)")
	flag.IntVar(&opts.MaxConnections, "max-connections", 0, "sessions the front door relays at once, as a compute size allows; beyond it logins get 53300 (0: no limit)")
	flag.BoolVar(&opts.Pooler, "pooler", false, "give the endpoint a pooled host: a real PgBouncer (pgbouncer on PATH) in transaction mode behind its own TLS port (pooled_port)")
	flag.StringVar(&opts.PoolerAuth, "pooler-auth", lakebasetest.PoolerAuthAny, "what the pooled host accepts: any (OAuth credentials and native passwords) or password (native passwords only)")
	flag.IntVar(&opts.PoolerPoolSize, "pooler-pool-size", 0, "the pooler's server sessions per user and database (0: nine tenths of -max-connections, else 10)")
	flag.StringVar(&opts.CredentialExpiryFormat, "credential-expiry-format", lakebasetest.ExpiryRFC3339Nano, "expiry of minted credentials: rfc3339, rfc3339nano, epoch, epoch-millis or none")
	flag.BoolVar(&opts.UnifiedHost, "unified-host", false, "be a unified host: OIDC at /oidc/accounts/<account_id> (as the host metadata says), workspace API calls without X-Databricks-Workspace-Id refused")
	flag.BoolVar(&noRole, "sp-without-role", false, "add a service principal with no Postgres role (norole_client_id, norole_client_secret): its logins are refused as the service refuses them")
	flag.BoolVar(&verbose, "v", false, "log events on stderr")
	flag.IntVar(&opts.HTTPPort, "port", 0, "loopback port of the workspace (OIDC and REST APIs) (0: a free port, or with -data-dir the one used last time)")
	flag.IntVar(&opts.PGPort, "pg-port", 0, "loopback port of the Postgres front door (0: as -port)")
	flag.IntVar(&opts.PooledPort, "pooled-port", 0, "loopback port of the pooled host, with -pooler (0: as -port)")
	flag.StringVar(&opts.DataDir, "data-dir", "", "keep the database and the workspace in this directory across restarts: PostgreSQL's data (and the branches'), the CA, the keys, "+
		"the identities and their secrets, the roles and the ports, so a connection string written once keeps working (made when missing or empty; "+
		"one instance per directory; a directory of another version or a damaged one is refused and left as it was). Unset: everything is temporary")
	controlPort := flag.Int("control-port", 0, "loopback port of the control endpoint (POST /restart, /failover, /suspend with the control_token of the JSON line) (0: a free port)")
	flag.Usage = usage
	flag.Parse()
	if opts.InvalidTokenStatus != 401 && opts.InvalidTokenStatus != 403 {
		fmt.Fprintln(os.Stderr, "lakebase-local: -invalid-token-status must be 401 or 403")
		os.Exit(2)
	}
	switch opts.CredentialExpiryFormat {
	case lakebasetest.ExpiryRFC3339, lakebasetest.ExpiryRFC3339Nano, lakebasetest.ExpiryEpoch, lakebasetest.ExpiryEpochMillis, lakebasetest.ExpiryNone:
	default:
		fmt.Fprintln(os.Stderr, "lakebase-local: -credential-expiry-format must be rfc3339, rfc3339nano, epoch, epoch-millis or none")
		os.Exit(2)
	}
	if opts.PoolerAuth != lakebasetest.PoolerAuthAny && opts.PoolerAuth != lakebasetest.PoolerAuthPassword {
		fmt.Fprintln(os.Stderr, "lakebase-local: -pooler-auth must be any or password")
		os.Exit(2)
	}
	if verbose {
		opts.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "lakebase-local: "+f+"\n", a...) }
	}

	// From before the start: a signal while it is under way (initdb takes seconds)
	// stops the emulator once it has started, rather than killing it midway and
	// leaving a new -data-dir half made. A second signal then stops it at once.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP) // a closed terminal ends it cleanly too
	stopping, started := make(chan os.Signal, 1), make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case s := <-sig:
				if n > 0 {
					fmt.Fprintf(os.Stderr, "lakebase-local: %v again: stopping now\n", s)
					os.Exit(1)
				}
				fmt.Fprintf(os.Stderr, "lakebase-local: %v: stopping once started (again to stop now)\n", s)
				stopping <- s
			case <-started:
				return
			}
		}
	}()
	srv, err := lakebasetest.NewServer(opts)
	close(started)
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

	info := map[string]any{
		"workspace":       srv.URL,
		"server":          srv.Host,
		"port":            srv.Port,
		"database":        srv.Database,
		"ca_file":         srv.CAFile,
		"endpoint":        srv.Endpoint,
		"instance":        srv.Instance,
		"workspace_id":    srv.WorkspaceID,
		"login_host":      srv.LoginHost(),
		"account_id":      srv.AccountID,
		"client_id":       srv.ServicePrincipal.ClientID,
		"client_secret":   srv.ServicePrincipal.ClientSecret,
		"user":            srv.User.Email,
		"postgres_pid":    srv.PostgresPID(),
		"temp_dirs":       srv.TempDirs(),
		"dsn_oauthclient": srv.OAuthClientDSN(),
		"dsn_oauthpkce":   srv.OAuthPKCEDSN(),
	}
	if noRole {
		id, secret := "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", randomSecret()
		if err := srv.AddServicePrincipal(id, secret); err != nil {
			fail(srv, err)
		}
		if err := srv.DropRole(id); err != nil {
			fail(srv, err)
		}
		info["norole_client_id"], info["norole_client_secret"] = id, secret
	}
	ctl := &control{srv: srv, token: newControlToken()}
	controlURL, stopControl, err := listenControl(ctl, *controlPort)
	if err != nil {
		fail(srv, err)
	}
	defer stopControl()
	info["control_url"], info["control_token"] = controlURL, ctl.token
	if dir := srv.DataDir(); dir != "" {
		info["data_dir"] = dir
		reused := srv.Reused()
		if reused == nil {
			reused = []string{} // a new data directory: nothing was reused
		}
		info["reused"] = reused
	}
	if srv.PooledPort != 0 {
		info["pooled_port"] = srv.PooledPort
		info["pooled_host"] = srv.PooledHost
		info["pgbouncer_pid"] = srv.PoolerPID()
	}
	line, _ := json.Marshal(info)
	fmt.Println(string(line))

	select {
	case <-stopping: // during the start
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "lakebase-local: %v: stopping\n", s)
	}
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "lakebase-local:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(flag.CommandLine.Output(), `Usage: lakebase-local [flags]

Runs a local Lakebase: a Databricks workspace (OIDC, the credential, lookup,
branch and role APIs) on a loopback port, and a TLS Postgres front door that takes
database credentials and relays to a real PostgreSQL (and, with -pooler, a pooled
host in front of a real PgBouncer). On start it prints one JSON line: the
workspace URL, ports, CA file, identities and ready-made connection strings.

As a development server:

  lakebase-local -data-dir ~/.local/share/lakebase-local -port 8080 -pg-port 5433

keeps PostgreSQL's data, the CA, the client secret, the roles, the branches
made through the API and the ports in the directory, so a service configured
once reconnects after the emulator restarts. One instance per directory; one of
another version, or a damaged one, is refused and left as it was.
The JSON line then has "data_dir" and "reused" (what the directory gave back:
postgres_data, ca, signing_key, identities, roles, ports, branches; empty for a
new one).

The compute's events, on purpose, through the control endpoint of the JSON line
("control_url", "control_token"):

  curl -X POST -H "Authorization: Bearer $TOKEN" "$CONTROL/restart?downtime=5s"
  curl -X POST -H "Authorization: Bearer $TOKEN" "$CONTROL/failover?downtime=5s"
  curl -X POST -H "Authorization: Bearer $TOKEN" "$CONTROL/suspend"

A restart or failover ends every session with 57P01, answers logins 57P03 for
the downtime (a failover also reports the instance FAILING_OVER) and keeps the
data; it answers when the compute is back.

Flags:
`)
	flag.PrintDefaults()
}

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "dose" + hex.EncodeToString(b)
}

func fail(srv *lakebasetest.Server, err error) {
	fmt.Fprintln(os.Stderr, "lakebase-local:", err)
	srv.Close()
	os.Exit(2)
}
