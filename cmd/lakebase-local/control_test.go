package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// The control endpoint acts only for a request with the control token: without it,
// with another token or the token elsewhere than the Authorization header, the
// answer is 401 and the compute is left alone (no restart counted, the same
// PostgreSQL process); the token never appears in an answer. With it, restart,
// failover and suspend happen.
func TestControl_ActsOnlyWithTheToken(t *testing.T) {
	testenv.NeedPostgres(t)
	srv := lakebasetest.Start(t, lakebasetest.Options{WakeDelay: 200 * time.Millisecond})
	if err := srv.AddPasswordRole("ctl_app", "ctl-pw"); err != nil {
		t.Fatal(err)
	}
	c := &control{srv: srv, token: newControlToken()}
	base, stop, err := listenControl(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	call := func(method, path, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(b), c.token) {
			t.Fatalf("%s %s: the answer holds the token", method, path)
		}
		return resp.StatusCode, string(b)
	}
	pid := srv.PostgresPID()
	other := newControlToken()
	for _, f := range []struct{ path, auth string }{
		{"/restart", ""},
		{"/restart", "Bearer " + other},
		{"/restart", "Bearer " + c.token[:len(c.token)-1]},
		{"/restart", "Basic " + c.token},
		{"/restart?token=" + c.token, ""},
		{"/failover", "bearer" + c.token},
		{"/suspend", "Bearer "},
	} {
		if code, body := call("POST", f.path, f.auth); code != http.StatusUnauthorized {
			t.Errorf("POST %s with %q: %d %s, want 401", strings.Split(f.path, "?")[0], strings.ReplaceAll(f.auth, c.token, "<token>"), code, body)
		}
	}
	if srv.Count(lakebasetest.EPComputeRestart)+srv.Count(lakebasetest.EPFailover) != 0 || srv.PostgresPID() != pid {
		t.Fatal("a request without the token reached the compute")
	}
	if _, err := login(srv); err != nil {
		t.Fatalf("a login after refused control requests: %v", err)
	}

	bearer := "Bearer " + c.token
	if code, _ := call("GET", "/restart", bearer); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", code)
	}
	if code, _ := call("POST", "/restart?downtime=forever", bearer); code != http.StatusBadRequest {
		t.Errorf("a bad downtime: %d", code)
	}
	if code, _ := call("POST", "/reboot", bearer); code != http.StatusNotFound {
		t.Errorf("an unknown event: %d", code)
	}
	if code, body := call("POST", "/restart?downtime=0s", bearer); code != http.StatusOK || srv.Count(lakebasetest.EPComputeRestart) != 1 || srv.PostgresPID() == pid {
		t.Fatalf("restart: %d %s", code, body)
	}
	if code, body := call("POST", "/failover?downtime=0s", bearer); code != http.StatusOK || srv.Count(lakebasetest.EPFailover) != 1 {
		t.Fatalf("failover: %d %s", code, body)
	}
	if _, err := login(srv); err != nil {
		t.Fatalf("a login after the events: %v", err)
	}
	if code, body := call("POST", "/suspend", bearer); code != http.StatusOK {
		t.Fatalf("suspend: %d %s", code, body)
	}
	var pe *pgconn.PgError
	if _, err := login(srv); !errors.As(err, &pe) || pe.Code != "57P03" {
		t.Fatalf("a login after suspend: %v, want 57P03 (waking)", err)
	}
}

func login(srv *lakebasetest.Server) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d dbname=%s user=ctl_app password=ctl-pw sslmode=verify-full sslrootcert=%s",
		srv.Host, srv.Port, srv.Database, srv.CAFile))
	if err == nil {
		pc.Close(ctx)
	}
	return pc, err
}
