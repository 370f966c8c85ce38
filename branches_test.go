package lakebase_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// Project and Branch name the database; the driver finds the branch's read-write
// endpoint (the default branch when Branch is empty) and mints for it.
func TestProjectBranch_ConnectByName(t *testing.T) {
	e := lakebasetest.Start(t, lakebasetest.Options{HTTPOnly: true, PageSize: 1})
	parts := strings.Split(e.Endpoint, "/") // projects/<p>/branches/<b>/endpoints/<e>
	for name, props := range map[string][]string{
		"ids":            {"Project=" + parts[1], "Branch=" + parts[3]},
		"default branch": {"Project=" + parts[1]},
		"full paths":     {"Project=projects/" + parts[1], "Branch=" + strings.Join(parts[:4], "/")},
		"branch path":    {"Branch=" + strings.Join(parts[:4], "/")},
	} {
		c, err := lakebase.NewConnector(e.OAuthClientDSN(append([]string{"Endpoint="}, props...)...))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st, err := c.Status(context.Background())
		c.Close()
		if err != nil || st.Endpoint != e.Endpoint || st.Host != e.Host {
			t.Fatalf("%s: %+v %v", name, st, err)
		}
	}
	// A branch that does not exist: a clear error naming it.
	c, _ := lakebase.NewConnector(e.OAuthClientDSN("Endpoint=", "Project="+parts[1], "Branch=gone"))
	defer c.Close()
	_, err := c.Login(context.Background())
	var ce *lakebase.ConfigError
	if !errors.As(err, &ce) || ce.Property != "Branch" || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("deleted branch: %v", err)
	}
	for _, dsn := range []string{
		e.OAuthClientDSN("Project=p"),             // with Endpoint
		e.OAuthClientDSN("Endpoint=", "Branch=b"), // no project
		e.OAuthClientDSN("Endpoint=", "Project=Bad Name"),
	} {
		if _, err := lakebase.NewConnector(dsn); !errors.Is(err, lakebase.ErrConfig) {
			t.Fatalf("%s: %v", dsn, err)
		}
	}
}

func TestProjectBranch_QueriesThroughTheBranchEndpoint(t *testing.T) {
	needServers(t)
	parts := strings.Split(emu.Endpoint, "/")
	db, _ := newDB(t, emu.OAuthClientDSN("Endpoint=", "Project="+parts[1], "Branch="+parts[3]))
	if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
		t.Fatalf("current_user %q", u)
	}
}

// LAKEBASE_ENDPOINT (set by Databricks Apps) names the endpoint when the string
// does not.
func TestEnvironment_LakebaseEndpoint(t *testing.T) {
	t.Setenv("LAKEBASE_ENDPOINT", "projects/p/branches/b/endpoints/e")
	cfg, err := lakebase.ParseDSN("DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b")
	if err != nil || cfg.Endpoint != "projects/p/branches/b/endpoints/e" {
		t.Fatalf("%v %v", cfg, err)
	}
	cfg, err = lakebase.ParseDSN("DatabricksInstance=dbc-1.cloud.databricks.com;OAuthClientId=a;OAuthClientSecret=b;Instance=i")
	if err != nil || cfg.Endpoint != "" {
		t.Fatalf("the string's Instance must win: %v %v", cfg, err)
	}
}

// A branch per test: the branch has the parent's data as it was, its writes stay
// on it, and once the test ends it is gone (connecting is a clear error).
func TestBranch_PerTestCopyIsolationAndCleanup(t *testing.T) {
	needServers(t)
	parent := openDB(t, emu.OAuthClientDSN())
	if _, err := parent.Exec("DROP TABLE IF EXISTS branch_items; CREATE TABLE branch_items (v int); INSERT INTO branch_items VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var branchDSN string
	t.Run("on a branch", func(t *testing.T) {
		branchDSN = lakebasetest.Branch(t, emu.OAuthClientDSN())
		db := openDB(t, branchDSN)
		var n int
		if err := db.QueryRow("SELECT count(*) FROM branch_items").Scan(&n); err != nil || n != 1 {
			t.Fatalf("the branch sees %d rows (%v), want the parent's 1", n, err)
		}
		if _, err := db.Exec("INSERT INTO branch_items VALUES (2), (3)"); err != nil {
			t.Fatal(err)
		}
		db.QueryRow("SELECT count(*) FROM branch_items").Scan(&n)
		if n != 3 {
			t.Fatalf("the branch has %d rows after its insert", n)
		}
		parent.QueryRow("SELECT count(*) FROM branch_items").Scan(&n)
		if n != 1 {
			t.Fatalf("the branch's writes reached the parent (%d rows)", n)
		}
		if got := emu.Branches(); len(got) != 1 {
			t.Fatalf("branches %v", got)
		}
	})
	if got := emu.Branches(); len(got) != 0 {
		t.Fatalf("the branch outlived its test: %v", got)
	}
	db, _ := newDB(t, branchDSN)
	err := db.Ping()
	var ce *lakebase.ConfigError
	if !errors.As(err, &ce) || ce.Property != "Branch" {
		t.Fatalf("a deleted branch: %v", err)
	}
}

func TestBranchID_FollowsTheServiceRule(t *testing.T) {
	for _, name := range []string{"TestX", "Test_With/Sub test#1", "123", strings.Repeat("VeryLong", 20), "---"} {
		id := lakebasetest.BranchID(name)
		if len(id) < 1 || len(id) > 63 || id[0] < 'a' || id[0] > 'z' || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Fatalf("%q → %q", name, id)
		}
		if lakebasetest.BranchID(name) == id {
			t.Fatalf("%q: no random suffix", name)
		}
	}
}

// Errors that cannot heal fail at once with what to do.
func TestBranch_MissingDatabaseFailsAtOnceWithAHint(t *testing.T) {
	needServers(t)
	parts := strings.Split(emu.Endpoint, "/")
	db, _ := newDB(t, emu.OAuthClientDSN("Endpoint=", "Project="+parts[1], "Branch="+parts[3], "Database=no_such_db"))
	err := db.Ping()
	if err == nil || !strings.Contains(err.Error(), `database "no_such_db" does not exist`) || !strings.Contains(err.Error(), "Set Database") && !strings.Contains(err.Error(), "set Database") {
		t.Fatalf("missing database: %v", err)
	}
}

// Right after a branch is made, logins may be refused for a while: the driver keeps
// minting and retrying for BranchLoginGrace, and the first query succeeds.
func TestBranch_RefusedLoginsOnANewBranchAreRetried(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{NewBranchLoginDelay: 3 * time.Second})
	dsn := lakebasetest.Branch(t, e.OAuthClientDSN())
	db := openDB(t, dsn)
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatalf("first query on a new branch: %v", err)
	}
	if e.Count(lakebasetest.EPLoginRefused) < 2 {
		t.Fatalf("only %d logins were refused: the test proves nothing", e.Count(lakebasetest.EPLoginRefused))
	}
}

// A credential minted for a branch's endpoint no longer logs in once the branch is
// deleted (its sessions never land on the parent); a warm start that stored the
// branch's lookup and credential drops them and fails with the clear "does not
// exist" error, with no write reaching the parent.
func TestBranch_DeletedBranchStopsServing(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	file := filepath.Join(t.TempDir(), "settings.json")
	parentDSN := e.OAuthClientDSN("OAuthSettingsLocation=" + file)
	var branchDSN string
	var l lakebase.Login
	t.Run("branch", func(t *testing.T) {
		branchDSN = lakebasetest.Branch(t, parentDSN)
		db := openDB(t, branchDSN)
		if _, err := db.Exec("CREATE TABLE only_on_branch (v int)"); err != nil {
			t.Fatal(err)
		}
		// A credential for the branch's endpoint, to try after the deletion.
		c, err := lakebase.NewConnector(branchDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if l, err = c.Login(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	// The branch is deleted now.
	pc, err := pgconn.Connect(context.Background(), fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s sslmode=verify-full sslrootcert=%s",
		l.Host, l.Port, l.Database, l.User, l.Password, e.CAFile))
	if err == nil {
		pc.Close(context.Background())
		t.Fatal("a credential of a deleted branch's endpoint still logs in")
	}
	// The store still holds the branch's lookup and credential: a warm start tries them.
	db, _ := newDB(t, branchDSN)
	_, err = db.Exec("CREATE TABLE written_after_delete (v int)")
	var ce *lakebase.ConfigError
	if !errors.As(err, &ce) || ce.Property != "Branch" || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a deleted branch: %v", err)
	}
	parent := openDB(t, e.OAuthClientDSN())
	var n int
	parent.QueryRow("SELECT count(*) FROM pg_tables WHERE tablename IN ('written_after_delete', 'only_on_branch')").Scan(&n)
	if n != 0 {
		t.Fatalf("%d of the branch's tables reached the parent", n)
	}
}

// countingTransport counts the requests sent through it.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// lakebasetest.Branch composes the branch's connection string through Config, so a
// parent given as a lakebase:// URL works, and it sends its requests through the
// connector's HTTP client.
func TestBranch_URLFormParentAndTheConnectorsHTTPClient(t *testing.T) {
	needServers(t)
	q := url.Values{}
	for _, kv := range strings.Split(emu.OAuthClientDSN(), ";") {
		k, v, _ := strings.Cut(kv, "=")
		q.Set(k, strings.Trim(v, "'"))
	}
	parent := "lakebase://?" + q.Encode()
	tr := &countingTransport{}
	var branchDSN string
	t.Run("branch", func(t *testing.T) {
		branchDSN = lakebasetest.Branch(t, parent, lakebasetest.BranchOptions{
			ConnectorOptions: []lakebase.Option{lakebase.WithHTTPClient(&http.Client{Transport: tr})}})
		db := openDB(t, branchDSN)
		if u := currentUser(t, db); u != emu.ServicePrincipal.ClientID {
			t.Fatalf("current_user on the branch %q", u)
		}
	})
	if tr.n.Load() < 3 { // token, create, operation poll (and delete)
		t.Fatalf("only %d requests went through the connector's HTTP client", tr.n.Load())
	}
	cfg, err := lakebase.ParseDSN(branchDSN)
	if err != nil || cfg.Branch == "" || cfg.Endpoint != "" {
		t.Fatalf("the branch's connection string: %v", err)
	}
}

// As on the service, a branch has its parent's database names and roles:
// current_database() on a branch is the parent's.
func TestBranch_HasItsParentsDatabaseName(t *testing.T) {
	needServers(t)
	parent := openDB(t, emu.OAuthClientDSN())
	var want string
	if err := parent.QueryRow("SELECT current_database()").Scan(&want); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, lakebasetest.Branch(t, emu.OAuthClientDSN()))
	var got, user string
	if err := db.QueryRow("SELECT current_database(), current_user").Scan(&got, &user); err != nil {
		t.Fatal(err)
	}
	if got != want || user != emu.ServicePrincipal.ClientID {
		t.Fatalf("on the branch: current_database() %q (the parent's is %q), current_user %q", got, want, user)
	}
}
