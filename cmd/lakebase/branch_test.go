package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// Branch ids and paths are checked against the service's rule before any request:
// nothing hostile reaches a REST path, and a branch of another project is refused.
func TestBranch_HostileIDsAreRefusedBeforeAnyRequest(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	dsn := emu.OAuthClientDSN()
	for _, id := range []string{"../../../../preview/scim/v2/Users/42", "x?force=true", "a%2F..", "..", "UPPER", "a/b",
		"projects/other/branches/b", "projects/lakebase/branches/x/endpoints/e"} {
		emu.ResetCounts()
		_, e, code := lakebaseCmd(t, dsn, nil, "branch", "delete", id)
		if code == 0 {
			t.Fatalf("branch delete %q succeeded", id)
		}
		if n := emu.Count(lakebasetest.EPBranches) + emu.Count(lakebasetest.EPSCIMMe) + emu.Count(lakebasetest.EPEndpoints); n != 0 {
			t.Fatalf("branch delete %q made %d API requests: %s", id, n, e)
		}
		if strings.Contains(e, "lakebase: lakebase:") {
			t.Fatalf("doubled prefix: %s", e)
		}
	}
	for _, dsn := range []string{emu.OAuthClientDSN("Endpoint=projects/lakebase/branches/main/endpoints/e?x=1"),
		emu.OAuthClientDSN("Endpoint=", "Instance=.."), emu.OAuthClientDSN("Endpoint=", "Project=p", "Branch=../x")} {
		if _, err := lakebase.ParseDSN(dsn); err == nil {
			t.Fatalf("%s was accepted", dsn)
		}
	}
}

// branch delete never deletes the default or a protected branch; gc touches only
// the connection string's project, skips the default and protected branches, goes on
// after an error and reports each.
func TestBranch_DeleteAndGCSpareDefaultAndProtectedBranches(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	dsn := emu.OAuthClientDSN()
	if _, e, code := lakebaseCmd(t, dsn, nil, "branch", "delete", "main"); code == 0 || !strings.Contains(e, "default branch") {
		t.Fatalf("branch delete main (%d): %s", code, e)
	}
	for _, name := range []string{"ci-one", "ci-two"} {
		if o, e, code := lakebaseCmd(t, dsn, nil, "branch", "create", "-name", name); code != 0 {
			t.Fatalf("create %s (%d): %s %s", name, code, o, e)
		}
	}
	createProtected(t, emu, "ci-kept")
	if _, e, code := lakebaseCmd(t, dsn, nil, "branch", "delete", "ci-kept"); code == 0 || !strings.Contains(e, "protected") {
		t.Fatalf("branch delete of a protected branch (%d): %s", code, e)
	}
	o, e, code := lakebaseCmd(t, dsn, nil, "branch", "gc", "-prefix", "ci-")
	if code != 0 || strings.Count(o, "deleted ") != 2 || !strings.Contains(o, "skipped projects/lakebase/branches/ci-kept") {
		t.Fatalf("gc (%d): %s %s", code, o, e)
	}
	left := strings.Join(emu.Branches(), " ")
	if left != "projects/lakebase/branches/ci-kept" {
		t.Fatalf("after gc: %q", left)
	}
}

// createProtected makes a protected branch through the API (spec.is_protected).
func createProtected(t *testing.T, emu *lakebasetest.Server, id string) {
	t.Helper()
	c, err := lakebase.NewConnector(emu.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok, err := c.TokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"spec": map[string]any{"is_protected": true}})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, emu.URL+"/api/2.0/postgres/projects/lakebase/branches?branch_id="+id, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("create protected branch: %v %v", err, resp)
	}
	resp.Body.Close()
	lakebaseCmd(t, emu.OAuthClientDSN(), nil, "branch", "list") // the copy finishes in the background
}

// What an attacker (or a broken service) controls here: how long the service
// takes to answer a branch create and to make the branch READY. branch create
// gives up after -wait (a CI job's step never hangs until the job's own timeout)
// and says how long it waited.
func TestBranch_CreateGivesUpAfterItsWait(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true})
	emu.SetLatency(lakebasetest.EPBranches, time.Hour) // a service that never answers
	_, e, code := lakebaseCmd(t, emu.OAuthClientDSN(), nil, "branch", "create", "-name", "slow", "-wait", "1s")
	if code == 0 || !strings.Contains(e, "waited 1s") {
		t.Fatalf("branch create against a service that never answers: %d %s", code, e)
	}
}
