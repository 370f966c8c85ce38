package lakebase_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/settings"
)

// workspaceRequests sums the emulator's workspace API and token calls (not the
// front door's logins).
func workspaceRequests(e *lakebasetest.Server) int64 {
	var n int64
	for k, v := range e.Counts() {
		switch k {
		case lakebasetest.EPToken, lakebasetest.EPDiscovery, lakebasetest.EPCredAutoscaling, lakebasetest.EPCredProvisioned,
			lakebasetest.EPInstances, lakebasetest.EPEndpoints, lakebasetest.EPSCIMMe:
			n += v
		}
	}
	return n
}

// queryInProcess runs one query in a new process with dsn.
func queryInProcess(t *testing.T, dsn string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=query-once", "LAKEBASE_HELPER_DSN="+dsn)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "query ok") {
		t.Fatalf("process: %v\n%s", err, out)
	}
}

func helperQueryOnce() int {
	db, err := sql.Open("lakebase", os.Getenv("LAKEBASE_HELPER_DSN"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer db.Close()
	var u string
	if err := db.QueryRow("SELECT current_user").Scan(&u); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("query ok", u)
	return 0
}

// A second process on the same store, within the credential's lifetime, makes no
// workspace request before its first query; after logout it makes them again.
func TestWarmRestart_ZeroRequests(t *testing.T) {
	needServers(t)
	for name, extra := range map[string][]string{
		"OAuthClient": nil,
		"OAuthPKCE":   {"pkce"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "settings.json")
			dsn := emu.OAuthClientDSN("OAuthSettingsLocation=" + file)
			if extra != nil {
				rt := userRefreshToken(t)
				dsn = emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthRefreshToken="+rt, "OAuthSettingsLocation="+file)
			}
			before := workspaceRequests(emu)
			queryInProcess(t, dsn)
			cold := workspaceRequests(emu) - before
			if cold == 0 {
				t.Fatal("the first process made no request: the test proves nothing")
			}
			before = workspaceRequests(emu)
			queryInProcess(t, dsn)
			if warm := workspaceRequests(emu) - before; warm != 0 {
				t.Fatalf("the warm process made %d workspace requests (the cold one %d)", warm, cold)
			}
			// A refused stored credential is dropped and replaced.
			emu.RevokeAllCredentials()
			queryInProcess(t, dsn)

			c, err := lakebase.NewConnector(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Logout(context.Background()); err != nil {
				t.Fatal(err)
			}
			c.Close()
			data, _ := os.ReadFile(file)
			if strings.Contains(string(data), `"credentials": {`) && !strings.Contains(string(data), `"credentials": {}`) {
				t.Fatalf("logout left credentials:\n%s", data)
			}
			if extra == nil { // a refresh token given in the string would seed a new login
				before = workspaceRequests(emu)
				queryInProcess(t, dsn)
				if n := workspaceRequests(emu) - before; n == 0 {
					t.Fatal("after logout the process made no request")
				}
			}
		})
	}
}

// Entries of different workspaces, identities or databases never mix.
func TestWarmRestart_EntriesDoNotMix(t *testing.T) {
	needServers(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	_, a := newDB(t, emu.OAuthClientDSN("OAuthSettingsLocation="+file))
	la, err := a.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The same identity for the Provisioned instance: another database, another credential.
	_, b := newDB(t, emu.OAuthClientDSN("OAuthSettingsLocation="+file, "Endpoint=", "Instance="+emu.Instance))
	lb, err := b.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if la.Password == lb.Password {
		t.Fatal("the endpoint's credential was used for the instance")
	}
	// Another identity on the same store and database.
	if err := emu.AddServicePrincipal("0b9e7c1d-2222-4333-8444-555566667777", "other-secret"); err != nil {
		t.Fatal(err)
	}
	_, o := newDB(t, emu.OAuthClientDSN("OAuthSettingsLocation="+file, "OAuthClientId=0b9e7c1d-2222-4333-8444-555566667777", "OAuthClientSecret=other-secret"))
	lo, err := o.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if lo.Password == la.Password || lo.User == la.User {
		t.Fatal("another identity got the first one's credential")
	}
}

// Eight processes starting at once on one settings store make one token, one
// credential and one lookup request between them (the first does the work under the
// store's lock and stores it; the others wait and take it), and none on the next
// start.
func TestFleet_EightProcessesOnOneStoreMintOnce(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	dsn := e.OAuthClientDSN("OAuthSettingsLocation=" + file)
	run := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "LAKEBASE_HELPER=query-once", "LAKEBASE_HELPER_DSN="+dsn)
				if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "query ok") {
					errs <- fmt.Errorf("process: %v\n%s", err, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	run()
	tokens, creds, lookups := e.Count(lakebasetest.EPToken), e.Count(lakebasetest.EPCredAutoscaling), e.Count(lakebasetest.EPEndpoints)
	if tokens != 1 || creds != 1 || lookups != 1 {
		t.Fatalf("8 processes at once: %d token, %d credential, %d lookup requests; want 1 each", tokens, creds, lookups)
	}
	e.ResetCounts()
	run()
	if n := workspaceRequests(e); n != 0 {
		t.Fatalf("the next start made %d workspace requests", n)
	}
}

// helperHoldStoreLock runs in a child process: it takes the Exclusive lock
// LAKEBASE_HELPER_LOCK of the store LAKEBASE_HELPER_STORE, as the first process of
// a fleet does, says "holding", and keeps it until a line arrives on stdin.
func helperHoldStoreLock() int {
	st, err := settings.OpenStore(os.Getenv("LAKEBASE_HELPER_STORE"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	err = settings.Exclusive(context.Background(), st, os.Getenv("LAKEBASE_HELPER_LOCK"), func() error {
		fmt.Println("holding")
		_, err := bufio.NewReader(os.Stdin).ReadString('\n')
		return err
	})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("released")
	return 0
}
