// Command lakebase logs in to Databricks Lakebase and hands database credentials to
// other tools. It reads the same connection strings as the driver (the CData form or
// the lakebase:// URL form), from -dsn or LAKEBASE_DSN, and fills what they leave out
// from PG* and DATABRICKS_* variables and ~/.databrickscfg profiles.
//
//	lakebase login [-headless]    log in as a person (OAuthPKCE) and store the tokens
//	lakebase token [-bare]        print a fresh database credential (JSON, or just the password)
//	lakebase status [-show-token] who you are, which database, until when; whether the login works
//	lakebase logout               remove the stored tokens
//	lakebase psql [psql args]     run psql logged in with a fresh credential
//	lakebase branch create|list|delete|gc   database branches, for tests and CI
//	lakebase version              print the version
//	lakebase help [command]       show the usage of lakebase or of a command
//
// Install: go install github.com/lakebase-go/lakebase/cmd/lakebase@latest
package main

import (
	"bufio"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/workspace"
)

const usage = `usage: lakebase [-dsn CONNECTION_STRING] <command> [flags]

commands:
  login [-headless] [-no-browser]
                        log in (OAuthPKCE: browser, or a code pasted on a headless machine)
                        and store the tokens in OAuthSettingsLocation
  token [-bare]         print a fresh database credential as JSON, or only the password
  status [-show-token]  show who you are, which database, and when the token and
                        credential expire (the credential itself only with -show-token),
                        and log in once: a refused login (a missing role) exits non-zero
  logout                remove the stored tokens
  psql [args...]        run psql with a fresh credential in PGPASSWORD (after one login
                        here, so a missing role is named rather than a bad password)
  branch create|list|delete|gc
                        database branches of the project (lakebase branch -h)
  role create|list|delete
                        Postgres roles of the branch or instance (lakebase role -h)
  version               print the version
  help [command]        show this, or a command's flags (also: lakebase <command> -h)

The connection string comes from -dsn or LAKEBASE_DSN (CData form or lakebase:// URL),
completed from PG*/DATABRICKS_* variables and ~/.databrickscfg profiles.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lakebase", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", os.Getenv("LAKEBASE_DSN"), "connection string (default $LAKEBASE_DSN)")
	fs.Usage = func() { fmt.Fprint(stderr, usage) } // a mistake: usage once, on stderr
	for _, a := range args {
		if isHelp(a) { // asked for: usage once, on stdout
			fmt.Fprint(stdout, usage)
			return 0
		}
		if !strings.HasPrefix(a, "-") || a == "--" {
			break // the command (or the end of lakebase's flags)
		}
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "lakebase %s (%s)\n", lakebase.Version, goVersion())
		return 0
	case "help":
		if len(rest) == 0 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		cmd, rest = rest[0], []string{"-h"}
	}
	help := len(rest) > 0 && isHelp(rest[0]) || cmd != "psql" && containsHelp(rest) || (cmd == "branch" || cmd == "role") && len(rest) > 1 && isHelp(rest[1])
	cfg, err := lakebase.ParseDSN(*dsn)
	var ce *lakebase.ConfigError
	var fn func(context.Context, *lakebase.Config, []string, io.Reader, io.Writer, io.Writer) error
	if cmd == "login" && !help && errors.As(err, &ce) && ce.Property == "DatabricksInstance" && ce.Value == "" {
		// No workspace: a host-agnostic login through the login host.
		cfg, err = &lakebase.Config{}, nil
		fn = func(ctx context.Context, _ *lakebase.Config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
			return discoveryLogin(ctx, *dsn, args, stdin, stdout, stderr)
		}
	}
	if err != nil && !help {
		fmt.Fprintln(stderr, err) // errors of the driver start with "lakebase:"
		return 2
	}
	if help {
		cfg = &lakebase.Config{} // the flags are shown before any use of it
		stderr = stdout
	}
	switch {
	case fn != nil:
	case cmd == "login":
		fn = login
	case cmd == "token":
		fn = token
	case cmd == "status":
		fn = status
	case cmd == "logout":
		fn = logout
	case cmd == "psql":
		fn = psql
	case cmd == "branch":
		fn = branchCmd
	case cmd == "role":
		fn = roleCmd
	default:
		fmt.Fprintf(stderr, "lakebase: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := fn(ctx, cfg, rest, stdin, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return exitCode(ee)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "lakebase") {
			msg = "lakebase: " + msg
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
	return 0
}

// exitCode is the exit status a shell gives a child's: its own, or 128+n when it
// died from signal n.
func exitCode(ee *exec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func containsHelp(args []string) bool {
	for _, a := range args {
		if isHelp(a) {
			return true
		}
		if a == "--" {
			break
		}
	}
	return false
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown Go"
}

func connector(cfg *lakebase.Config, stderr io.Writer) (*lakebase.Connector, error) {
	useStoredLogin(cfg)
	return lakebase.NewConnectorFromConfig(cfg, lakebase.WithStderr(stderr))
}

// discoveryLogin is lakebase login with no workspace: the person picks it at the
// login host (LoginHost); the tokens are stored under it, and the connection
// string to use from then on is printed.
func discoveryLogin(ctx context.Context, dsn string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	headless := fs.Bool("headless", false, "print the login URL and read the URL the browser ends on from standard input")
	noBrowser := fs.Bool("no-browser", false, "do not open a browser; only print the login URL (the callback is still served here)")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // a person needs time to log in
	defer cancel()
	opts := []lakebase.Option{lakebase.WithStderr(stderr)}
	if *noBrowser {
		opts = append(opts, lakebase.WithBrowserOpener(func(string) error { return nil }))
	}
	var cfg *lakebase.Config
	var err error
	if *headless {
		a, err := lakebase.NewDiscoveryAuthorization(dsn)
		if err != nil {
			return err
		}
		line, err := prompt(stdin, stdout, "the URL", "Open this URL in a browser on any machine, log in and pick the workspace:\n\n  %s\n\nThen paste the URL the browser ends on: ", a.URL)
		if err != nil {
			return err
		}
		if cfg, err = lakebase.FinishDiscoveryLogin(ctx, dsn, a, line, opts...); err != nil {
			return err
		}
	} else if cfg, err = lakebase.DiscoveryLogin(ctx, dsn, opts...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Logged in to %s. Use this connection string (add Endpoint=, Project= or Instance= to name the database):\n%s\n",
		cfg.DatabricksInstance, connectionStringOf(cfg))
	return nil
}

// prompt prints a question and reads one line of the answer (what names it in
// errors).
func prompt(stdin io.Reader, stdout io.Writer, what, format string, args ...any) (string, error) {
	fmt.Fprintf(stdout, format, args...)
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	return line, nil
}

// connectionStringOf is cfg's connection string without secrets or defaults that
// only repeat themselves.
func connectionStringOf(cfg *lakebase.Config) string {
	parts := []string{"AuthScheme=OAuthPKCE", "DatabricksInstance=" + lakebase.QuoteDSNValue(cfg.DatabricksInstance)}
	if cfg.OAuthClientID != lakebase.DefaultPKCEClientID {
		parts = append(parts, "OAuthClientId="+lakebase.QuoteDSNValue(cfg.OAuthClientID))
	}
	for _, kv := range [][2]string{{"Endpoint", cfg.Endpoint}, {"Project", cfg.Project}, {"Branch", cfg.Branch}, {"Instance", cfg.Instance},
		{"OAuthSettingsLocation", cfg.OAuthSettingsLocation}, {"InitiateOAuth", string(lakebase.InitiateRefresh)}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+lakebase.QuoteDSNValue(kv[1]))
		}
	}
	return strings.Join(parts, ";")
}

// useStoredLogin makes the command use the stored login of a person: for OAuthPKCE
// without an OAuthAccessToken, InitiateOAuth=OFF (the driver's default) could only
// fail, so the command reads it as REFRESH (the login that lakebase login stored).
func useStoredLogin(cfg *lakebase.Config) {
	if cfg.AuthScheme == lakebase.AuthOAuthPKCE && cfg.InitiateOAuth == lakebase.InitiateOff && cfg.OAuthAccessToken == "" {
		cfg.InitiateOAuth = lakebase.InitiateRefresh
	}
}

// subcommand parses a subcommand's flags (define adds them) and opens a connector.
func subcommand(name string, cfg *lakebase.Config, args []string, stderr io.Writer, define func(*flag.FlagSet)) (*lakebase.Connector, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return connector(cfg, stderr)
}

// progress prints a line while waiting for something, until stop is called.
func progress(w io.Writer, what string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%s... done (%s)\n", what, time.Since(start).Round(time.Second))
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%s... %ds", what, int(time.Since(start)/time.Second))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func login(ctx context.Context, cfg *lakebase.Config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	headless := fs.Bool("headless", false, "print the login URL and read the code (or the URL the browser ends on) from standard input")
	noBrowser := fs.Bool("no-browser", false, "do not open a browser; only print the login URL (the callback is still served here)")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.AuthScheme != lakebase.AuthOAuthPKCE {
		// Nothing to store for a person: check that the login works.
		return status(ctx, cfg, nil, stdin, stdout, stderr)
	}
	if cfg.Timeout > 0 && cfg.Timeout < 5*time.Minute {
		cfg.Timeout = 5 * time.Minute // a person needs time to log in
	}
	if *headless {
		// The two steps of a login on another machine: the URL to open there, then the
		// code it ends with, exchanged and stored here.
		cfg.InitiateOAuth = lakebase.InitiateRefresh
		c, err := connector(cfg, stderr)
		if err != nil {
			return err
		}
		defer c.Close()
		a, err := c.AuthorizationURL(ctx, lakebase.AuthorizationRequest{})
		if err != nil {
			return err
		}
		line, err := prompt(stdin, stdout, "the code", "Open this URL in a browser on any machine and log in:\n\n  %s\n\nThen paste the code, or the URL the browser ends on: ", a.URL)
		if err != nil {
			return err
		}
		code, err := a.Code(line)
		if err != nil {
			return err
		}
		if _, err := c.ExchangeCode(ctx, lakebase.CodeExchange{Code: code, State: a.State}); err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Logged in as %s to %s; tokens stored in %s\n", st.User, st.Workspace, c.SettingsLocation())
		return nil
	}
	cfg.InitiateOAuth = lakebase.InitiateGetAndRefresh
	opts := []lakebase.Option{lakebase.WithStderr(stderr)}
	if *noBrowser {
		opts = append(opts, lakebase.WithBrowserOpener(func(string) error { return nil }))
	}
	c, err := lakebase.NewConnectorFromConfig(cfg, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := progress(stderr, "waiting for the browser login")
	st, err := c.Status(ctx)
	stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Logged in as %s to %s; tokens stored in %s\n", st.User, st.Workspace, c.SettingsLocation())
	return nil
}

func token(ctx context.Context, cfg *lakebase.Config, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var bare *bool
	c, err := subcommand("token", cfg, args, stderr, func(fs *flag.FlagSet) {
		bare = fs.Bool("bare", false, "print only the password")
	})
	if err != nil {
		return err
	}
	defer c.Close()
	cr, err := c.Login(ctx)
	if err != nil {
		return err
	}
	if *bare {
		fmt.Fprintln(stdout, cr.Password)
		return nil
	}
	out := map[string]any{"password": cr.Password, "user": cr.User, "host": cr.Host, "port": cr.Port, "database": cr.Database}
	if !cr.Expiry.IsZero() {
		out["expiry"] = cr.Expiry.Format(time.RFC3339)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func status(ctx context.Context, cfg *lakebase.Config, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var show *bool
	c, err := subcommand("status", cfg, args, stderr, func(fs *flag.FlagSet) {
		show = fs.Bool("show-token", false, "also print the database credential")
	})
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(stdout, "%-18s %s\n", k+":", v)
		}
	}
	line("auth scheme", string(st.AuthScheme))
	line("workspace", st.Workspace)
	line("user", st.User)
	line("database", fmt.Sprintf("%s:%d/%s", st.Host, st.Port, st.Database))
	line("endpoint", st.Endpoint)
	line("instance", st.Instance)
	expiry := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339) + " (in " + time.Until(t).Round(time.Second).String() + ")"
	}
	line("token expires", expiry(st.TokenExpiry))
	line("credential expires", expiry(st.CredentialExpiry))
	line("tokens stored in", c.SettingsLocation())
	if cert, err := c.CheckServerCertificate(ctx); err != nil {
		line("server certificate", "not checked: "+err.Error())
	} else if cert.SystemTrusted {
		line("server certificate", "verifies against the system roots for "+cert.Host+": SSLServerCert=system (verify-full) will work")
	} else {
		line("server certificate", "does not verify against the system roots for "+cert.Host+" ("+cert.VerifyError+"); keep SSLServerCert pointing at its CA")
	}
	// The credential is only half of it: the login itself says whether the
	// identity has a Postgres role (Lakebase answers a missing one as a wrong
	// password; the driver asks the roles API and says which).
	if err := tryLogin(ctx, c); err != nil {
		line("login", "refused (below)")
		return fmt.Errorf("status: the login to the database failed: %w", err)
	}
	line("login", "ok")
	if *show {
		cr, err := c.Login(ctx)
		if err != nil {
			return err
		}
		line("credential", cr.Password)
	}
	return nil
}

// tryLogin logs in to the database once, through the driver, so that a refusal
// comes back as the driver tells it (a NoRoleError for an identity without a
// Postgres role) rather than as a bare "password authentication failed".
// The connector stays open (an sql.DB would close it with itself).
func tryLogin(ctx context.Context, c *lakebase.Connector) error {
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if p, ok := conn.(driver.Pinger); ok {
		return p.Ping(ctx) // the session opens on first use
	}
	return nil
}

func logout(ctx context.Context, cfg *lakebase.Config, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if cfg.InitiateOAuth == lakebase.InitiateOff {
		cfg.InitiateOAuth = lakebase.InitiateRefresh // logout removes what is stored, whatever InitiateOAuth says
	}
	c, err := subcommand("logout", cfg, args, stderr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	loc := c.SettingsLocation()
	if loc == "" {
		fmt.Fprintf(stdout, "Nothing to remove: AuthScheme=%s stores no login\n", cfg.AuthScheme)
		return nil
	}
	had, err := c.HasStoredLogin(ctx)
	if err != nil {
		return err
	}
	if err := c.Logout(ctx); err != nil {
		return err
	}
	if !had {
		fmt.Fprintf(stdout, "Nothing was stored for %s (client %s) in %s\n", cfg.DatabricksInstance, cfg.OAuthClientID, loc)
		return nil
	}
	fmt.Fprintf(stdout, "Removed the stored login for %s (client %s) from %s\n", cfg.DatabricksInstance, cfg.OAuthClientID, loc)
	return nil
}

const psqlUsage = `usage: lakebase psql [-branch BRANCH] [-role ROLE] [psql args...]

Runs psql logged in with a fresh database credential: PGHOST, PGPORT, PGUSER,
PGDATABASE, PGPASSWORD, PGSSLMODE (and PGSSLROOTCERT) are set from the connection
string; every other argument goes to psql (e.g. lakebase psql -XAtc 'SELECT 1').

  -branch B    connect to branch B of the connection string's project
  -role ROLE   act as ROLE (SET ROLE at login; default: the SessionRole property)
`

func psql(ctx context.Context, cfg *lakebase.Config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stderr, psqlUsage)
		return flag.ErrHelp
	}
	role := cfg.SessionRole
	for len(args) > 0 {
		if args[0] == "--" { // the end of lakebase's own flags; the rest is psql's
			args = args[1:]
			break
		}
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || flagName != "role" && flagName != "branch" {
			break
		}
		if !hasValue {
			if len(args) < 2 {
				return fmt.Errorf("psql: -%s needs a value", flagName)
			}
			value, args = args[1], args[1:]
		}
		args = args[1:]
		if flagName == "role" {
			role = value
		} else {
			// Another branch of the same project.
			c := *cfg
			if c.Endpoint != "" {
				e, err := workspace.ParseEndpoint(c.Endpoint)
				if err != nil {
					return err
				}
				c.Project, c.Endpoint = e.Project, ""
			}
			c.Branch = value
			cfg = &c
		}
	}
	bin := os.Getenv("PSQL")
	if bin == "" {
		bin = "psql"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return fmt.Errorf("psql was not found on PATH (install the PostgreSQL client, or set PSQL): %w", err)
	}
	c, err := connector(cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	// Log in once here: psql would show a missing role as a bare "password
	// authentication failed"; the driver names the identity, where and the fixes.
	if err := tryLogin(ctx, c); err != nil {
		return fmt.Errorf("psql: not started: %w", err)
	}
	cr, err := c.Login(ctx)
	if err != nil {
		return err
	}
	env := append(psqlEnviron(os.Environ()), "PGSERVICEFILE="+os.DevNull,
		"PGHOST="+cr.Host, "PGPORT="+strconv.Itoa(cr.Port), "PGUSER="+cr.User, "PGDATABASE="+cr.Database,
		"PGPASSWORD="+cr.Password, "PGSSLMODE="+string(cfg.SSLMode), "PGAPPNAME="+cfg.ApplicationName)
	if role != "" {
		// The role is set when the session starts, as SET ROLE would (libpq options).
		env = append(env, "PGOPTIONS=-c role="+strings.NewReplacer(`\`, `\\`, " ", `\ `).Replace(role))
	}
	if cert := cfg.SSLServerCert; cert != "" {
		if strings.HasPrefix(strings.TrimSpace(cert), "-----BEGIN") {
			f, err := os.CreateTemp("", "lakebase-ca-*.pem")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			f.WriteString(cert)
			f.Close()
			cert = f.Name()
		}
		env = append(env, "PGSSLROOTCERT="+cert)
	}
	// Not CommandContext: Ctrl-C reaches psql from the terminal, and psql answers it
	// as it always does (a cancel request for the running query); lakebase only
	// waits for psql to end.
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd.Run()
}

// psqlEnviron is the caller's environment for psql without what must not reach it:
// every PG* variable (a PGSERVICE, PGHOSTADDR or PGPASSFILE would override or
// leak the login the command sets up) and the driver's and Databricks' secrets.
func psqlEnviron(environ []string) []string {
	secret := map[string]bool{
		"DATABRICKS_TOKEN": true, "DATABRICKS_CLIENT_SECRET": true, "DATABRICKS_PASSWORD": true,
		"DATABRICKS_OIDC_TOKEN": true, "DATABRICKS_AZURE_CLIENT_SECRET": true, "DATABRICKS_GOOGLE_CREDENTIALS": true,
		"ARM_CLIENT_SECRET": true, "AZURE_CLIENT_SECRET": true,
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if strings.HasPrefix(upper, "PG") || strings.HasPrefix(upper, "LAKEBASE_") || secret[upper] {
			continue
		}
		out = append(out, kv)
	}
	return out
}
