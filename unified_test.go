package lakebase_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/workspace"
)

// A unified host: OIDC lives where the host's metadata says (not at /oidc), and
// workspace calls must name the workspace. Without WorkspaceId the driver reads the
// metadata once, when first needed, and names the workspace from then on; with
// WorkspaceId every call names it from the first; a wrong id is the service's refusal.
func TestUnifiedHost_MetadataOIDCAndTheWorkspaceHeader(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{UnifiedHost: true})

	db, _ := newDB(t, e.OAuthClientDSN())
	if u := currentUser(t, db); u != e.ServicePrincipal.ClientID {
		t.Fatalf("logged in as %q", u)
	}
	if n := e.Count(lakebasetest.EPHostMetadata); n != 1 {
		t.Fatalf("the host metadata was read %d times, want once", n)
	}
	if n := e.Count(lakebasetest.EPNoWorkspaceID); n > 1 {
		t.Fatalf("%d calls were refused for want of the workspace id, want at most the first", n)
	}
	// Later calls name the workspace: a role list through the connector's client.
	c, err := lakebase.NewConnector(e.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.ResetCounts()
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	refusedBefore := e.Count(lakebasetest.EPNoWorkspaceID)
	if _, err := c.Workspace().ListRoles(context.Background(), workspace.ListRolesRequest{Branch: "projects/lakebase/branches/main"}); err != nil {
		t.Fatalf("Connector.Workspace on a unified host: %v", err)
	}
	if e.Count(lakebasetest.EPNoWorkspaceID) != refusedBefore {
		t.Fatal("a call after the workspace id was learned did not name it")
	}

	e.ResetCounts()
	known, _ := newDB(t, e.OAuthClientDSN("WorkspaceId="+e.WorkspaceID))
	if err := known.Ping(); err != nil {
		t.Fatalf("with WorkspaceId: %v", err)
	}
	if n := e.Count(lakebasetest.EPNoWorkspaceID); n != 0 {
		t.Fatalf("with WorkspaceId, %d calls were refused", n)
	}

	wrong, _ := newDB(t, e.OAuthClientDSN("WorkspaceId=42"))
	if err := wrong.Ping(); err == nil || !strings.Contains(err.Error(), "Workspace 42 is not available on this host") {
		t.Fatalf("with a wrong WorkspaceId: %v", err)
	}
}

// WorkspaceId comes from DATABRICKS_WORKSPACE_ID too.
func TestUnifiedHost_WorkspaceIDFromTheEnvironment(t *testing.T) {
	t.Setenv("DATABRICKS_WORKSPACE_ID", "7777")
	c, err := lakebase.NewConnector("AuthScheme=OAuthClient;DatabricksInstance=http://127.0.0.1:1;OAuthClientId=x;OAuthClientSecret=y;Endpoint=projects/p/branches/b/endpoints/e")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Config().WorkspaceID; got != "7777" {
		t.Fatalf("WorkspaceID from the environment: %q", got)
	}
}

// The host's metadata is kept in the settings store like the other lookups: a later
// process on the same store reads it there, not from the host.
func TestUnifiedHost_MetadataIsKeptInTheSettingsStore(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{UnifiedHost: true})
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := e.OAuthClientDSN("OAuthSettingsLocation=" + store)
	db, _ := newDB(t, dsn)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	data, err := os.ReadFile(store)
	if err != nil || !strings.Contains(string(data), `"host_metadata"`) || !strings.Contains(string(data), e.WorkspaceID) {
		t.Fatalf("the settings file has no host metadata (%d bytes): %v", len(data), err)
	}
	e.RevokeAllCredentials() // the next process must mint, through the workspace API
	e.ResetCounts()
	again, _ := newDB(t, dsn)
	if err := again.Ping(); err != nil {
		t.Fatal(err)
	}
	if n := e.Count(lakebasetest.EPHostMetadata); n != 0 {
		t.Fatalf("the metadata was read from the host again (%d times)", n)
	}
	if e.Count(lakebasetest.EPCredAutoscaling) == 0 {
		t.Fatal("no credential was minted: the test proves nothing")
	}
}

// One 503 from /.well-known/databricks-config is retried within the login; a
// metadata read that keeps failing fails that login only: nothing of the failure
// is kept, and the next login on the same connector reads the metadata again and
// works.
func TestUnifiedHost_MetadataFailuresAreRetriedAndNeverKept(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{UnifiedHost: true})

	e.SetFailures(lakebasetest.EPHostMetadata, 1)
	once, _ := newDB(t, e.OAuthClientDSN())
	if err := once.Ping(); err != nil {
		t.Fatalf("one 503 from the host metadata failed the login: %v", err)
	}
	if n := e.Count(lakebasetest.EPHostMetadata); n != 2 {
		t.Fatalf("the host metadata was read %d times, want 2 (the 503, then the retry)", n)
	}

	e.ResetCounts()
	e.SetFailures(lakebasetest.EPHostMetadata, 1000)
	db, c := newDB(t, e.OAuthClientDSN("Timeout=5"))
	if _, err := c.Login(context.Background()); err == nil {
		t.Fatal("a login succeeded with the host metadata failing every time: the test proves nothing")
	}
	e.SetFailures(lakebasetest.EPHostMetadata, 0)
	if err := db.Ping(); err != nil {
		t.Fatalf("after the host metadata recovered, the next login on the connector failed: %v", err)
	}
	if u := currentUser(t, db); u != e.ServicePrincipal.ClientID {
		t.Fatalf("logged in as %q", u)
	}
}

// A stored workspace id that the host refuses ("Workspace 42 is not available on
// this host": the workspace moved, or the store was edited) is dropped with the
// stored metadata, which is read from the host again; the login works, and the
// store holds the host's answer for the next process.
func TestUnifiedHost_RefusedStoredWorkspaceIDIsReadAgain(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{UnifiedHost: true})
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := e.OAuthClientDSN("OAuthSettingsLocation=" + store)
	first, _ := newDB(t, dsn)
	if err := first.Ping(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	editStore(t, store, func(doc map[string]any) {
		metas := entries(doc, "host_metadata")
		if len(metas) == 0 {
			t.Fatal("the store has no host metadata: the test proves nothing")
		}
		for _, m := range metas {
			m["workspace_id"] = "42"
		}
		delete(doc, "credentials") // the next process calls the workspace
	})
	e.ResetCounts()

	db, _ := newDB(t, dsn)
	if err := db.Ping(); err != nil {
		t.Fatalf("a refused stored workspace id failed the login: %v", err)
	}
	if n := e.Count(lakebasetest.EPHostMetadata); n != 1 {
		t.Fatalf("the host metadata was read %d times, want once", n)
	}
	data, _ := os.ReadFile(store)
	if strings.Contains(string(data), `"workspace_id": "42"`) || !strings.Contains(string(data), e.WorkspaceID) {
		t.Fatalf("the store still holds the refused workspace id:\n%s", data)
	}
	// The next process uses the stored answer and reads nothing from the host.
	e.ResetCounts()
	editStore(t, store, func(doc map[string]any) { delete(doc, "credentials") })
	again, _ := newDB(t, dsn)
	if err := again.Ping(); err != nil {
		t.Fatal(err)
	}
	if n := e.Count(lakebasetest.EPHostMetadata); n != 0 {
		t.Fatalf("the next process read the host metadata %d times", n)
	}
}
