package oauth_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/oauth"
)

func desktop(emu *lakebasetest.Server, callback string, open func(string) error) *oauth.DesktopLogin {
	return &oauth.DesktopLogin{
		Client: &oauth.TokenClient{ClientID: "databricks-cli",
			Discovery: &oauth.Discovery{Workspace: emu.URL}},
		CallbackURL: callback,
		Scope:       "all-apis offline_access",
		OpenBrowser: open,
	}
}

// TestDesktopLogin_LoopbackOnlyAndSingleUse: the callback server binds a loopback
// address only, takes one callback, and is gone after it.
func TestDesktopLogin_LoopbackOnlyAndSingleUse(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	for _, cb := range []string{"http://example.com:8020", "http://0.0.0.0:8020", "http://192.168.1.10:8020", "https://localhost:8020"} {
		if _, err := desktop(emu, cb, nil).Run(context.Background()); err == nil {
			t.Fatalf("CallbackURL %s was accepted", cb)
		}
	}

	var bound net.Addr
	var callbackURL string
	d := desktop(emu, "http://localhost:0/cb", func(u string) error {
		go func() {
			resp, err := http.Get(u) // the browser: follows the redirect to the callback
			if err == nil {
				resp.Body.Close()
			}
		}()
		return nil
	})
	d.Listen = func(network, addr string) (net.Listener, error) {
		l, err := net.Listen(network, addr)
		if err == nil {
			bound = l.Addr()
			callbackURL = "http://" + l.Addr().String() + "/cb"
		}
		return l, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, err := d.Run(ctx)
	if err != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("login: %v", err)
	}
	if ip := bound.(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Fatalf("the callback server bound %v", bound)
	}
	// The server is gone: a second callback cannot land.
	resp, err := http.Get(callbackURL + "?code=again&state=x")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a second callback got HTTP %d", resp.StatusCode)
	}
}

// TestDesktopLogin_WrongStateKeepsWaiting: a callback with a forged or missing
// state, or a request for another path, gets an error page and does not end the
// login; the real callback that follows completes it.
func TestDesktopLogin_WrongStateKeepsWaiting(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	statuses := make(chan string, 1)
	open := func(u string) error {
		cb, _ := url.Parse(u)
		redirect := cb.Query().Get("redirect_uri")
		go func() {
			var got []string
			for _, q := range []string{redirect + "?code=x&state=forged", redirect + "?code=x", redirect + "/favicon.ico"} {
				resp, err := http.Get(q)
				if err != nil {
					got = append(got, err.Error())
					continue
				}
				resp.Body.Close()
				got = append(got, strconv.Itoa(resp.StatusCode))
			}
			statuses <- strings.Join(got, " ")
			if resp, err := http.Get(u); err == nil { // the real browser, approving
				resp.Body.Close()
			}
		}()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, err := desktop(emu, "http://127.0.0.1:0", open).Run(ctx)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("login after stray callbacks: %v", err)
	}
	if got := <-statuses; got != "400 400 404" {
		t.Fatalf("stray callbacks answered %s, want 400 400 404", got)
	}
}

// TestDesktopLogin_FallsBackFrom8020 shows the default port's fallback: when 8020 is
// taken, the next ports are tried, as the Databricks tools do.
func TestDesktopLogin_FallsBackFrom8020(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	var tried []string
	d := desktop(emu, "http://localhost:8020", func(u string) error {
		go func() {
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
			}
		}()
		return nil
	})
	d.Listen = func(network, addr string) (net.Listener, error) {
		tried = append(tried, addr)
		if strings.HasSuffix(addr, ":8020") || strings.HasSuffix(addr, ":8021") {
			return nil, errors.New("address already in use")
		}
		return net.Listen(network, "127.0.0.1:0") // stands in for 8022
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Join(tried, " ") != "127.0.0.1:8020 127.0.0.1:8021 127.0.0.1:8022" {
		t.Fatalf("tried %v", tried)
	}
}
