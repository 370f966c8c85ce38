// Command quickstart walks through the lakebase driver step by step.
//
// With no LAKEBASE_DSN set it starts the local Lakebase emulator in this process (an
// OIDC server, the credential APIs, a TLS Postgres front door and a real, throwaway
// PostgreSQL) and shows an OAuthClient login, the minted credential's expiry, a few
// queries, and an OAuthPKCE web login through the virtual procedures. With
// LAKEBASE_DSN set it runs the login and queries against that database instead.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

func main() {
	if err := run(context.Background(), os.Getenv("LAKEBASE_DSN"), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dsn string, out io.Writer) error {
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n==> "+format+"\n", args...) }
	say := func(format string, args ...any) { fmt.Fprintf(out, "    "+format+"\n", args...) }

	var emu *lakebasetest.Server
	if dsn == "" {
		step("Starting the local Lakebase emulator (no LAKEBASE_DSN is set)")
		start := time.Now()
		var err error
		emu, err = lakebasetest.NewServer(lakebasetest.Options{})
		if errors.Is(err, lakebasetest.ErrNoPostgres) {
			return fmt.Errorf("the emulator runs a real PostgreSQL, and no server binaries were found.\n" +
				"Install them (Debian/Ubuntu: sudo apt-get install -y postgresql; macOS: brew install postgresql) and run again,\n" +
				"or set LAKEBASE_DSN to a real Lakebase connection string")
		}
		if err != nil {
			return err
		}
		defer func() {
			step("Stopping the emulator")
			emu.Close()
			say("PostgreSQL stopped and temporary files removed.")
		}()
		say("workspace (OIDC + Lakebase APIs): %s", emu.URL)
		say("Postgres front door (TLS only):    %s:%d, database %s", emu.Host, emu.Port, emu.Database)
		say("service principal:                 %s", emu.ServicePrincipal.ClientID)
		say("ready in %v", time.Since(start).Round(time.Millisecond))
		dsn = emu.OAuthClientDSN()
	}

	cfg, err := lakebase.ParseDSN(dsn)
	if err != nil {
		return err
	}
	step("Opening a database with AuthScheme=%s", cfg.AuthScheme)
	say("connection string (secrets hidden): %s", cfg)
	// An observer counts what the login pipeline does (the otel module exports the
	// same events to OpenTelemetry: README, "Observability").
	var evMu sync.Mutex
	events := map[lakebase.EventKind]int{}
	count := lakebase.ObserverFunc(func(_ context.Context, e lakebase.Event) {
		evMu.Lock()
		events[e.Kind]++
		evMu.Unlock()
	})
	c, err := lakebase.NewConnectorFromConfig(cfg, lakebase.WithObserver(count))
	if err != nil {
		return err
	}
	db := lakebase.OpenDB(c)
	defer db.Close()

	step("Logging in: workspace OAuth token -> Lakebase database credential -> Postgres password")
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	say("Postgres role:        %s", st.User)
	say("host:                 %s:%d/%s", st.Host, st.Port, st.Database)
	if st.Endpoint != "" {
		say("Autoscaling endpoint: %s", st.Endpoint)
	}
	if st.Instance != "" {
		say("Provisioned instance: %s", st.Instance)
	}
	if !st.CredentialExpiry.IsZero() {
		say("credential expires:   %s (in %v); the driver refreshes it ahead of time",
			st.CredentialExpiry.Format(time.RFC3339), time.Until(st.CredentialExpiry).Round(time.Second))
	}

	step("Running queries")
	var who, version string
	if err := db.QueryRowContext(ctx, "SELECT current_user, version()").Scan(&who, &version); err != nil {
		return err
	}
	say("SELECT current_user -> %s", who)
	say("server: %.60s...", version)
	// A temp table lives in one session: use one connection for the rest.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS quickstart_notes (id serial PRIMARY KEY, body text NOT NULL)`); err != nil {
		return err
	}
	say("CREATE TEMP TABLE quickstart_notes")
	for _, body := range []string{"hello from Go", "tokens refresh themselves", "pgx does the data traffic"} {
		if _, err := conn.ExecContext(ctx, `INSERT INTO quickstart_notes (body) VALUES ($1)`, body); err != nil {
			return err
		}
	}
	say("INSERT 3 rows")
	rows, err := conn.QueryContext(ctx, `SELECT id, body FROM quickstart_notes ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return err
		}
		say("  %d | %s", id, body)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	evMu.Lock()
	say("the login pipeline reported %d workspace token, %d credential mint and %d login events to its observer;",
		events[lakebase.EventWorkspaceToken], events[lakebase.EventCredentialMint], events[lakebase.EventLogin])
	evMu.Unlock()
	say("export them as OpenTelemetry metrics and spans with github.com/lakebase-go/lakebase/otel (README: Observability)")

	if emu == nil {
		step("Done (the OAuthPKCE web login is shown on the emulator only)")
		return nil
	}
	return pkceWebLogin(ctx, emu, step, say)
}

// pkceWebLogin shows what a web app does for a person: GetOAuthAuthorizationURL,
// send the browser there, take the code from the callback, GetOAuthAccessToken.
func pkceWebLogin(ctx context.Context, emu *lakebasetest.Server, step, say func(string, ...any)) error {
	step("An OAuthPKCE login for a person, through the virtual procedures (the emulator approves by itself)")
	emu.SetAutoApprove(true)
	c, err := lakebase.NewConnector(emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://quickstart"))
	if err != nil {
		return err
	}
	db := lakebase.OpenDB(c)
	defer db.Close()

	const callback = "http://localhost:8020/callback"
	var authURL, state, verifier string
	if err := db.QueryRowContext(ctx, "EXEC GetOAuthAuthorizationURL CallbackUrl=?", callback).Scan(&authURL, &state, &verifier); err != nil {
		return err
	}
	u, _ := url.Parse(authURL)
	say("EXEC GetOAuthAuthorizationURL -> %s%s?client_id=%s&code_challenge_method=%s&...", u.Host, u.Path,
		u.Query().Get("client_id"), u.Query().Get("code_challenge_method"))

	// The browser: follow the authorization URL up to the redirect to our callback.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		return err
	}
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	say("the user approved; the browser comes back to %s?code=...&state=...", callback)
	if cb.Query().Get("state") != state {
		return errors.New("the callback's state does not match")
	}

	var access, refresh sql.NullString
	var expiresIn int64
	if err := db.QueryRowContext(ctx, "EXEC GetOAuthAccessToken Verifier=?, State=?", cb.Query().Get("code"), state).
		Scan(&access, &refresh, &expiresIn); err != nil {
		return err
	}
	say("EXEC GetOAuthAccessToken -> an access token valid %ds and a refresh token (not shown), stored for later connections", expiresIn)
	var who string
	if err := db.QueryRowContext(ctx, "SELECT current_user").Scan(&who); err != nil {
		return err
	}
	say("SELECT current_user -> %s (the person's e-mail, from SCIM Me)", who)
	return nil
}
