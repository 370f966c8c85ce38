package workspace_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"github.com/lakebase-go/lakebase/workspace"
)

func static(tok string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})
}

// A token the workspace refuses (403 "Invalid access token") reaches OnTokenRefused
// once; the call is made once more with the token it returns.
func TestClient_RefusedTokenIsRenewedOnceThroughTheHook(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer new" {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error_code":"PERMISSION_DENIED","message":"Invalid access token"}`))
			return
		}
		w.Write([]byte(`{"userName":"ada@example.com"}`))
	}))
	defer srv.Close()
	var hooked []string
	c := workspace.New(srv.URL, static("old"), nil, workspace.Options{OnTokenRefused: func(_ context.Context, refused string, err error) (string, error) {
		hooked = append(hooked, refused)
		return "new", nil
	}})
	u, err := c.Me(context.Background())
	if err != nil || u != "ada@example.com" || len(hooked) != 1 || hooked[0] != "old" || calls.Load() != 2 {
		t.Fatalf("Me = %q, %v; hook %v; %d calls", u, err, hooked, calls.Load())
	}
	// Without a hook the refusal is the error.
	_, err = workspace.New(srv.URL, static("old"), nil, workspace.Options{}).Me(context.Background())
	var ae *workspace.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden {
		t.Fatalf("without a hook: %v", err)
	}
}

// A redirect is never followed with the workspace token.
func TestClient_RedirectsAreNeverFollowed(t *testing.T) {
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evil.Close()
	redirect := httptest.NewServer(http.RedirectHandler(evil.URL+"/steal", http.StatusTemporaryRedirect))
	defer redirect.Close()
	c := workspace.New(redirect.URL, static("WORKSPACE-TOKEN"), &http.Client{}, workspace.Options{})
	_, err := c.GenerateCredential(context.Background(), workspace.CredentialRequest{Endpoint: "projects/p/branches/b/endpoints/e"})
	if !errors.Is(err, httpx.ErrRedirect) || strings.Contains(fmt.Sprint(err), "WORKSPACE-TOKEN") || hits.Load() != 0 {
		t.Fatalf("redirect: %v (target hit %d times)", err, hits.Load())
	}
}

// Names that break the service's rule never reach a path.
func TestResourcePath_RefusesNamesThatBreakTheServiceRule(t *testing.T) {
	for name, want := range map[string]string{
		"projects/p":                          "/api/2.0/postgres/projects/p",
		"projects/p/branches/b-1":             "/api/2.0/postgres/projects/p/branches/b-1",
		"projects/p/branches/b/endpoints/e":   "/api/2.0/postgres/projects/p/branches/b/endpoints/e",
		"projects/p/branches/b/operations/Xy": "/api/2.0/postgres/projects/p/branches/b/operations/Xy",
	} {
		if got, err := workspace.ResourcePath(name); err != nil || got != want {
			t.Fatalf("%s: %q %v", name, got, err)
		}
	}
	for _, name := range []string{"", "projects", "projects/../x", "projects/p/branches/../../../../preview/scim/v2/Users/42",
		"projects/p/branches/x?force=true", "projects/p/branches/a%2F..", "projects/P", "projects/p/users/u", "projects/p/branches/b/endpoints/e?x=1"} {
		if _, err := workspace.ResourcePath(name); !errors.Is(err, workspace.ErrResourceName) {
			t.Fatalf("%q was accepted: %v", name, err)
		}
	}
	if _, err := workspace.ResourcePath("projects/p/branches/b", "endpoints"); err == nil {
		t.Fatal("a branch was accepted as an endpoint")
	}
}

// Operation.Wait GETs the operation (even one that is done already, as the SDK
// does), polls with backoff until it is done, and decodes the result.
func TestOperation_WaitPollsAndDecodes(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.Write([]byte(`{"name":"projects/p/branches/b/operations/op1","done":false}`))
		case r.Method == http.MethodDelete:
			w.Write([]byte(`{"name":"projects/p/branches/b/operations/op2","done":true,"response":{}}`))
		case strings.HasSuffix(r.URL.Path, "/op1"):
			if polls.Add(1) < 3 {
				w.Write([]byte(`{"name":"projects/p/branches/b/operations/op1","done":false}`))
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"name": "projects/p/branches/b/operations/op1", "done": true,
				"response": map[string]any{"name": "projects/p/branches/b", "status": map[string]any{"current_state": "READY"}}})
		case strings.HasSuffix(r.URL.Path, "/op2"):
			polls.Add(100)
			w.Write([]byte(`{"name":"projects/p/branches/b/operations/op2","done":true,"response":{}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := workspace.New(srv.URL, static("t"), nil, workspace.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	op, err := c.CreateBranch(ctx, workspace.CreateBranchRequest{Project: "projects/p", BranchID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := op.Wait(ctx)
	if err != nil || b.Name != "projects/p/branches/b" || b.Status.CurrentState != "READY" || polls.Load() != 3 {
		t.Fatalf("Wait: %+v %v after %d polls", b, err, polls.Load())
	}
	del, err := c.DeleteBranch(ctx, workspace.DeleteBranchRequest{Name: "projects/p/branches/b"})
	if err != nil || !del.Done() {
		t.Fatalf("delete: %v", err)
	}
	if _, err := del.Wait(ctx); err != nil || polls.Load() != 103 {
		t.Fatalf("a done deletion's operation was not fetched once: %v, polls %d", err, polls.Load())
	}
}

// Every listing follows next_page_token.
func TestList_FollowsEveryPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := r.URL.Query().Get("page_token")
		next := map[string]string{"": "2", "2": "3", "3": ""}[page]
		json.NewEncoder(w).Encode(map[string]any{"database_instances": []map[string]string{{"name": "i" + page}}, "next_page_token": next})
	}))
	defer srv.Close()
	insts, err := workspace.New(srv.URL, static("t"), nil, workspace.Options{}).ListInstances(context.Background(), workspace.ListInstancesRequest{})
	if err != nil || len(insts) != 3 {
		t.Fatalf("%v %v", insts, err)
	}
}

// A credential's fmt forms hide it.
func TestDatabaseCredential_FormsHideTheToken(t *testing.T) {
	cred := workspace.DatabaseCredential{Token: "SECRET-C", Expiry: time.Now()}
	if s := fmt.Sprintf("%v %+v %#v %s", cred, cred, cred, &cred); strings.Contains(s, "SECRET") {
		t.Fatalf("leak: %s", s)
	}
}

// A unified host refuses calls that do not name the workspace. Two calls refused at
// once both go through once the id is resolved (once), and later calls name it
// from the start; a host that refuses with 400 for another reason costs one
// resolution, never a loop.
func TestClient_WorkspaceIDIsResolvedOnceForConcurrentRefusals(t *testing.T) {
	var refused, served atomic.Int32
	bothRefused := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Databricks-Workspace-Id") != "42" {
			if refused.Add(1) == 2 {
				close(bothRefused)
			}
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error_code":"INVALID_PARAMETER_VALUE","message":"name the workspace"}`))
			return
		}
		served.Add(1)
		w.Write([]byte(`{"userName":"ada@example.com"}`))
	}))
	defer srv.Close()
	var resolutions atomic.Int32
	c := workspace.New(srv.URL, static("t"), nil, workspace.Options{ResolveWorkspaceID: func(ctx context.Context) (string, error) {
		resolutions.Add(1)
		<-bothRefused // the second call was refused before the id was known
		return "42", nil
	}})
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := c.Me(context.Background()); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Me(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, s, n := refused.Load(), served.Load(), resolutions.Load(); r != 2 || s != 3 || n != 1 {
		t.Fatalf("%d refused, %d served, %d resolutions; want 2, 3, 1", r, s, n)
	}

	plain := workspace.New(srv.URL, static("t"), nil, workspace.Options{ResolveWorkspaceID: func(context.Context) (string, error) {
		resolutions.Add(1)
		return "", errors.New("no metadata")
	}})
	resolutions.Store(0)
	for range 3 {
		if _, err := plain.Me(context.Background()); err == nil {
			t.Fatal("a refused call succeeded")
		}
	}
	// A failed resolution is not kept (it may have been a passing failure): each
	// refused call asks again.
	if n := resolutions.Load(); n != 3 {
		t.Fatalf("%d resolutions for three refused calls, want 3", n)
	}
}

// A unified host refuses calls without the workspace id: a resolution that fails is
// not kept (the next refused call asks again), and a learned id the host refuses
// goes to WorkspaceIDRefused, whose answer the call is made again with.
func TestClient_WorkspaceIDFailuresAreNotKeptAndRefusedIDsAreReplaced(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch id := r.Header.Get("X-Databricks-Workspace-Id"); id {
		case "7":
			w.Write([]byte(`{"userName":"ada@example.com"}`))
		case "":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error_code":"INVALID_PARAMETER_VALUE","message":"set the X-Databricks-Workspace-Id header"}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error_code":"INVALID_PARAMETER_VALUE","message":"Workspace %s is not available on this host."}`, id)
		}
	}))
	defer srv.Close()
	var resolves int
	c := workspace.New(srv.URL, static("t"), nil, workspace.Options{ResolveWorkspaceID: func(context.Context) (string, error) {
		if resolves++; resolves == 1 {
			return "", errors.New("host metadata: HTTP 503")
		}
		return "7", nil
	}})
	if _, err := c.Me(context.Background()); err == nil {
		t.Fatal("the first call worked without a workspace id")
	}
	if u, err := c.Me(context.Background()); err != nil || u != "ada@example.com" || resolves != 2 {
		t.Fatalf("after a failed resolution: %q, %v (%d resolutions)", u, err, resolves)
	}

	var refused []string
	c = workspace.New(srv.URL, static("t"), nil, workspace.Options{
		KnownWorkspaceID: func() string { return "42" },
		WorkspaceIDRefused: func(_ context.Context, id string) (string, error) {
			refused = append(refused, id)
			return "7", nil
		}})
	if u, err := c.Me(context.Background()); err != nil || u != "ada@example.com" || len(refused) != 1 || refused[0] != "42" {
		t.Fatalf("with a refused learned id: %q, %v (refused %v)", u, err, refused)
	}
	// An id given as WorkspaceID is the user's: its refusal is the error.
	c = workspace.New(srv.URL, static("t"), nil, workspace.Options{WorkspaceID: "42",
		WorkspaceIDRefused: func(context.Context, string) (string, error) { t.Fatal("asked about a configured id"); return "", nil }})
	if _, err := c.Me(context.Background()); err == nil || !strings.Contains(err.Error(), "Workspace 42 is not available") {
		t.Fatalf("with WorkspaceId=42: %v", err)
	}
}
