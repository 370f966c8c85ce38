// Command headless logs in to Lakebase as a person on a machine without a browser
// (a server, a container, an SSH session):
//
//  1. On the headless machine, Connector.AuthorizationURL (EXEC GetOAuthAuthorizationURL
//     in SQL); the driver keeps the PKCE verifier in the settings file under the
//     returned state.
//  2. Open the printed URL in a browser anywhere and log in; the browser ends on the
//     callback URL (it need not load). Paste that URL (or just its code) back here.
//  3. Connect with OAuthVerifier=<code>: the driver exchanges it once, stores the
//     tokens in OAuthSettingsLocation, and from then on refreshes them (REFRESH).
//
// The settings file can then be copied to another machine and used there with
// InitiateOAuth=REFRESH (the transfer flow).
//
//	LAKEBASE_DSN='AuthScheme=OAuthPKCE;DatabricksInstance=...;Endpoint=...' go run ./examples/headless -settings ./OAuthSettings.txt
//
// With no LAKEBASE_DSN it runs against the local emulator and approves by itself.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

func main() {
	settings := flag.String("settings", "", "OAuthSettingsLocation (default: a file in a temp directory)")
	flag.Parse()
	dsn := os.Getenv("LAKEBASE_DSN")
	in := io.Reader(os.Stdin)
	if dsn == "" {
		emu, err := lakebasetest.NewServer(lakebasetest.Options{AutoApprove: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer emu.Close()
		dsn = emu.OAuthPKCEDSN()
		// Play the person with a browser on another machine.
		pr, pw := io.Pipe()
		in = pr
		defer pw.Close()
		urls := make(chan string, 1)
		go browserElsewhere(urls, pw)
		defer close(urls)
		os.Stdout = teeURL(os.Stdout, urls)
	}
	if *settings == "" {
		dir, err := os.MkdirTemp("", "lakebase-headless-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		*settings = filepath.Join(dir, "OAuthSettings.txt")
	}
	if err := run(context.Background(), dsn, *settings, in, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "headless:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dsn, settings string, in io.Reader, out io.Writer) error {
	base := dsn + ";InitiateOAuth=REFRESH;OAuthSettingsLocation='" + strings.ReplaceAll(settings, "'", "''") + "'"
	c, err := lakebase.NewConnector(base)
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := c.AuthorizationURL(ctx, lakebase.AuthorizationRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Open this URL in a browser on any machine and log in:\n\n  %s\n\n", a.URL)
	fmt.Fprintf(out, "Then paste the URL the browser ends on (or its code) and press Enter:\n")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("reading the code: %w", err)
	}
	code, err := a.Code(line)
	if err != nil {
		return err
	}

	// The verifier is exchanged once; the tokens land in the settings file.
	c2, err := lakebase.NewConnector(base + ";OAuthVerifier='" + strings.ReplaceAll(code, "'", "''") + "'")
	if err != nil {
		return err
	}
	db2 := lakebase.OpenDB(c2)
	defer db2.Close()
	var who string
	if err := db2.QueryRowContext(ctx, "SELECT current_user").Scan(&who); err != nil {
		return err
	}
	fmt.Fprintf(out, "Logged in as %s. Tokens are stored in %s.\n", who, settings)

	// Later runs (or another machine with a copy of the file) need no code at all.
	c3, err := lakebase.NewConnector(base)
	if err != nil {
		return err
	}
	db3 := lakebase.OpenDB(c3)
	defer db3.Close()
	var n int
	if err := db3.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables").Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(out, "A new connection with InitiateOAuth=REFRESH and no code: %d tables visible.\n", n)
	return nil
}

// browserElsewhere follows an authorization URL (the emulator approves by itself)
// and writes the callback URL it ends on, as a person would paste it.
func browserElsewhere(urls <-chan string, w io.WriteCloser) {
	u, ok := <-urls
	if !ok {
		return
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(u)
	if err != nil {
		w.Close()
		return
	}
	resp.Body.Close()
	fmt.Fprintln(w, resp.Header.Get("Location"))
}

// teeURL returns a file whose writes go to f, passing the first authorization URL seen to urls.
func teeURL(f *os.File, urls chan<- string) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		return f
	}
	go func() {
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			if t := strings.TrimSpace(line); !sent && strings.HasPrefix(t, "http") && strings.Contains(t, "/authorize?") {
				urls <- t
				sent = true
			}
		}
	}()
	return w
}
