package oauth

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// ErrStateMismatch is returned when a callback's state is not the one sent.
var ErrStateMismatch = errors.New("lakebase: the callback's state does not match the authorization request (possible CSRF); the login was refused")

// DesktopLogin is the browser login of a person on this machine: it serves the
// redirect URI on a private loopback server, opens the authorization URL in the
// browser (and prints it), checks state, exchanges the code with the PKCE verifier,
// and shows a small success page.
type DesktopLogin struct {
	Client      *TokenClient
	CallbackURL string // http://localhost:8020 by default; loopback hosts only
	Scope       string
	// OpenBrowser opens a URL; nil uses the system's opener.
	OpenBrowser func(url string) error
	// Out receives a line with the URL, in case no browser opens.
	Out io.Writer
	// Listen, if set, replaces net.Listen (for tests).
	Listen func(network, address string) (net.Listener, error)
	// ConfirmWorkspace, if set, is called by RunDiscovery with the workspace the
	// login host named (after it passed CheckIssuer), before the code is redeemed
	// there: an error ends the login and nothing is sent.
	ConfirmWorkspace func(workspace string) error
}

// Run performs the login. It ends when the callback arrives or ctx ends.
func (d *DesktopLogin) Run(ctx context.Context) (*oauth2.Token, error) {
	cb, err := d.await(ctx, func(redirect, state, verifier string) (string, error) {
		return d.Client.AuthCodeURL(ctx, redirect, d.Scope, state, verifier)
	}, nil)
	if err != nil {
		return nil, err
	}
	return d.Client.Exchange(ctx, cb.code, cb.verifier, cb.redirect)
}

// RunDiscovery performs a host-agnostic login, as the Databricks Go SDK's u2m
// discovery login does: the authorization URL is the login host's
// (https://login.databricks.com by default) with the workspace authorize path and
// query as destination_url; the person picks the workspace there; the callback's
// iss names it. The callback listener applies CheckIssuer to iss before it
// answers: an issuer the login host may not name ends the login with an
// *IssuerError and nothing is sent. Otherwise the workspace is printed to Out,
// ConfirmWorkspace is asked, and the code is exchanged at <iss>/v1/token. It
// returns the workspace host (scheme and host of iss) and the tokens.
func (d *DesktopLogin) RunDiscovery(ctx context.Context, loginHost, clientID string) (string, *oauth2.Token, error) {
	cb, err := d.await(ctx, func(redirect, state, verifier string) (string, error) {
		return DiscoveryAuthorizeURL(loginHost, clientID, redirect, d.Scope, state, verifier), nil
	}, func(iss string) (string, error) { return CheckIssuer(loginHost, iss) })
	if err != nil {
		return "", nil, err
	}
	if d.Out != nil {
		fmt.Fprintf(d.Out, "lakebase: logging in to workspace %s (the workspace picked at %s)\n", cb.host, loginHost)
	}
	if d.ConfirmWorkspace != nil {
		if err := d.ConfirmWorkspace(cb.host); err != nil {
			return "", nil, fmt.Errorf("lakebase: the login to workspace %s was not completed: %w", cb.host, err)
		}
	}
	var hc *http.Client
	if d.Client != nil {
		hc = d.Client.HTTP
	}
	return ExchangeAtIssuerFor(ctx, hc, loginHost, cb.iss, clientID, cb.code, cb.verifier, cb.redirect)
}

// DefaultLoginHost is where a host-agnostic login starts.
const DefaultLoginHost = "https://login.databricks.com"

// DiscoveryAuthorizeURL is the login host's URL of a host-agnostic login: the
// workspace's /oidc/v1/authorize path with every OAuth parameter (PKCE S256),
// URL-encoded as destination_url, as the Go SDK builds it.
func DiscoveryAuthorizeURL(loginHost, clientID, redirect, scope, state, verifier string) string {
	auth := url.Values{}
	auth.Set("client_id", clientID)
	auth.Set("redirect_uri", redirect)
	auth.Set("response_type", "code")
	auth.Set("scope", scope)
	auth.Set("state", state)
	auth.Set("code_challenge", S256Challenge(verifier))
	auth.Set("code_challenge_method", "S256")
	top := url.Values{}
	top.Set("destination_url", "/oidc/v1/authorize?"+auth.Encode())
	return strings.TrimRight(loginHost, "/") + "/?" + top.Encode()
}

// HostFromIssuer is the workspace host (scheme and host) of an issuer the callback
// of a login through DefaultLoginHost named: CheckIssuer(DefaultLoginHost, iss).
// A login through another LoginHost uses CheckIssuer with it.
func HostFromIssuer(iss string) (string, error) { return CheckIssuer(DefaultLoginHost, iss) }

// ExchangeAtIssuer redeems the code of a host-agnostic login through
// DefaultLoginHost at <iss>/v1/token and returns the workspace host with the
// tokens: ExchangeAtIssuerFor with DefaultLoginHost.
func ExchangeAtIssuer(ctx context.Context, hc *http.Client, iss, clientID, code, verifier, redirect string) (string, *oauth2.Token, error) {
	return ExchangeAtIssuerFor(ctx, hc, DefaultLoginHost, iss, clientID, code, verifier, redirect)
}

// ExchangeAtIssuerFor redeems the code of a host-agnostic login that started at
// loginHost at <iss>/v1/token and returns the workspace host with the tokens. iss
// must pass CheckIssuer(loginHost, iss); otherwise nothing is sent and the error
// is an *IssuerError.
func ExchangeAtIssuerFor(ctx context.Context, hc *http.Client, loginHost, iss, clientID, code, verifier, redirect string) (string, *oauth2.Token, error) {
	if iss == "" {
		return "", nil, &TokenError{Op: "authorize", Code: "invalid_request", Description: "the callback has no iss: the login host must name the workspace"}
	}
	host, err := CheckIssuer(loginHost, iss)
	if err != nil {
		return "", nil, err
	}
	tc := &TokenClient{HTTP: hc, ClientID: clientID, Discovery: &Discovery{HTTP: hc, Workspace: host,
		Override: oauth2.Endpoint{AuthURL: strings.TrimRight(iss, "/") + "/v1/authorize", TokenURL: strings.TrimRight(iss, "/") + "/v1/token"}}}
	tok, err := tc.Exchange(ctx, code, verifier, redirect)
	return host, tok, err
}

// callbackResult is what the callback brought.
type callbackResult struct {
	code, iss, host, verifier, redirect string
}

// await serves the callback, opens the URL authURL makes, and waits for the code.
// checkIss, when set, is applied to the callback's iss before the callback is
// answered (a host-agnostic login): its refusal ends the login, and the workspace
// it returns is named on the page.
func (d *DesktopLogin) await(ctx context.Context, authURL func(redirect, state, verifier string) (string, error), checkIss func(iss string) (string, error)) (callbackResult, error) {
	ln, redirect, err := d.listen()
	if err != nil {
		return callbackResult{}, err
	}
	state, verifier := NewState(), NewVerifier()
	u, err := authURL(redirect, state, verifier)
	if err != nil {
		ln.Close()
		return callbackResult{}, err
	}

	type result struct {
		code, iss, host string
		err             error
	}
	results := make(chan result, 1)
	var once sync.Once
	cbPath := "/"
	if u, _ := url.Parse(redirect); u != nil && u.Path != "" {
		cbPath = u.Path
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path != cbPath {
			http.NotFound(w, r) // a favicon fetch, a probe: not the callback
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		q := r.URL.Query()
		if q.Get("state") != state {
			// Not the answer to this login (a stale tab, a local process guessing):
			// refuse it and keep waiting for the real one.
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, page("Login failed", ErrStateMismatch.Error()))
			return
		}
		var res result
		switch {
		case q.Get("error") != "":
			res.err = &TokenError{Op: "authorize", Code: q.Get("error"), Description: firstLine(q.Get("error_description"))}
		case q.Get("code") == "":
			res.err = &TokenError{Op: "authorize", Code: "invalid_request", Description: "the callback has no code"}
		case checkIss != nil && q.Get("iss") == "":
			res.err = &TokenError{Op: "authorize", Code: "invalid_request", Description: "the callback has no iss: the login host must name the workspace"}
		default:
			res.code, res.iss = q.Get("code"), q.Get("iss")
			if checkIss != nil {
				res.host, res.err = checkIss(res.iss)
			}
		}
		handled := false
		once.Do(func() { handled = true; results <- res })
		if !handled {
			w.WriteHeader(http.StatusGone)
			io.WriteString(w, page("Already handled", "This login callback was already used."))
			return
		}
		if res.err != nil {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, page("Login failed", res.err.Error()))
			return
		}
		if res.host != "" {
			io.WriteString(w, page("Logging in to workspace "+res.host,
				"You are logging in to Lakebase on workspace "+res.host+". You can close this window; the program that started the login says when it is done."))
			return
		}
		io.WriteString(w, page("Login complete", "You are logged in to Lakebase. You can close this window."))
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx)
		cancel()
	}()

	if d.Out != nil {
		fmt.Fprintf(d.Out, "lakebase: to log in, open this URL in a browser:\n  %s\n", u)
	}
	open := d.OpenBrowser
	if open == nil {
		open = OpenBrowser
	}
	if err := open(u); err != nil && d.Out != nil {
		fmt.Fprintf(d.Out, "lakebase: could not open a browser (%v); open the URL above by hand\n", err)
	}

	select {
	case res := <-results:
		if res.err != nil {
			return callbackResult{}, res.err
		}
		return callbackResult{code: res.code, iss: res.iss, host: res.host, verifier: verifier, redirect: redirect}, nil
	case <-ctx.Done():
		return callbackResult{}, fmt.Errorf("lakebase: the browser login did not complete in time: %w", ctx.Err())
	}
}

// listen binds the loopback address of CallbackURL. For the default port 8020, when
// it is taken, it falls back through 8021..8040 as the Databricks tools do.
func (d *DesktopLogin) listen() (net.Listener, string, error) {
	raw := d.CallbackURL
	if raw == "" {
		raw = "http://localhost:8020"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return nil, "", fmt.Errorf("lakebase: CallbackURL %q must be an http:// loopback URL for the desktop login", raw)
	}
	host := u.Hostname()
	bind := host
	switch host {
	case "localhost":
		bind = "127.0.0.1"
	case "127.0.0.1", "::1":
	default:
		if !httpx.IsLoopbackHost(host) {
			return nil, "", fmt.Errorf("lakebase: CallbackURL host %q is not a loopback address; the desktop login serves the callback on this machine only", host)
		}
	}
	port := 80
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	}
	last := port
	if port == 8020 {
		last = 8040
	}
	listen := d.Listen
	if listen == nil {
		listen = net.Listen
	}
	var lerr error
	for p := port; p <= last; p++ {
		ln, err := listen("tcp", net.JoinHostPort(bind, strconv.Itoa(p)))
		if err != nil {
			lerr = err
			continue
		}
		actual := ln.Addr().(*net.TCPAddr).Port
		r := *u
		r.Host = net.JoinHostPort(host, strconv.Itoa(actual))
		if u.Port() == "" && actual == 80 {
			r.Host = u.Host
		}
		return ln, r.String(), nil
	}
	return nil, "", fmt.Errorf("lakebase: cannot listen for the login callback on %s: %w", raw, lerr)
}

func page(title, msg string) string {
	return "<!doctype html><html><head><meta charset=utf-8><title>" + html.EscapeString(title) +
		"</title></head><body style=\"font-family:system-ui,sans-serif;margin:4rem auto;max-width:30rem\"><h1 id=title>" +
		html.EscapeString(title) + "</h1><p id=msg>" + html.EscapeString(msg) + "</p></body></html>"
}

// OpenBrowser opens url with the system's browser.
func OpenBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
