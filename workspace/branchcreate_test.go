package workspace_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/workspace"
)

// branchClients are a client through a proxy that loses answers (retrying) and
// one straight to the emulator, with the project of e's endpoint.
func branchClients(t *testing.T, e *lakebasetest.Server) (api, direct *workspace.Client, lose *loseAnswers, project string) {
	t.Helper()
	proxy, lose := startLosingProxy(t, e.URL)
	tok, err := e.UserToken(e.User.Email)
	if err != nil {
		t.Fatal(err)
	}
	api = workspace.New(proxy.URL, static(tok), nil, workspace.Options{Retry: httpx.Retry{MaxAttempts: 3, Base: time.Millisecond}})
	direct = workspace.New(e.URL, static(tok), nil, workspace.Options{})
	return api, direct, lose, e.Endpoint[:strings.Index(e.Endpoint, "/branches/")]
}

// countBranches is how many branches of project are named name.
func countBranches(t *testing.T, api *workspace.Client, project, name string) int {
	t.Helper()
	bs, err := api.ListBranches(context.Background(), workspace.ListBranchesRequest{Project: project})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range bs {
		if b.Name == name {
			n++
		}
	}
	return n
}

// A branch create whose answer is lost after the service made the branch is
// retried; the retry's ALREADY_EXISTS is then checked against the branch read
// back: made from the source asked (the project's default branch when none was)
// and not before the create began, it is the branch asked for, and the returned
// operation ends when it is READY. A caller never sees a failure for a branch that
// was made, nor a second branch.
func TestCreateBranch_ALostAnswerThenAlreadyExistsIsTheBranchMade(t *testing.T) {
	testenv.NeedPostgres(t)
	e := lakebasetest.Start(t)
	api, direct, lose, project := branchClients(t, e)
	ctx := context.Background()
	main := e.Endpoint[:strings.Index(e.Endpoint, "/endpoints/")]

	for _, source := range []string{"", main} {
		id := "lost-default"
		if source != "" {
			id = "lost-main"
		}
		lose.loseNext(nil)
		op, err := api.CreateBranch(ctx, workspace.CreateBranchRequest{Project: project, BranchID: id, Source: source})
		if err != nil {
			t.Fatalf("create branch %s after a lost answer: %v", id, err)
		}
		b, err := op.Wait(ctx)
		if err != nil || b.Name != project+"/branches/"+id || b.Status.CurrentState != "READY" || b.Source() != main {
			t.Fatalf("the branch made: %+v, %v", b, err)
		}
		if n := countBranches(t, direct, project, b.Name); n != 1 {
			t.Fatalf("%d branches named %s", n, b.Name)
		}
	}
	if got := lose.creates(); len(got) != 4 || lose.applied != http.StatusOK {
		t.Fatalf("branch creates sent: %q (the lost ones answered %d); want each lost one applied and retried once", got, lose.applied)
	}

	// With no answer lost, ALREADY_EXISTS stays what it is: the branch was there before.
	_, err := api.CreateBranch(ctx, workspace.CreateBranchRequest{Project: project, BranchID: "lost-main", Source: main})
	var ae *workspace.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict || errors.Is(err, workspace.ErrBranchExists) {
		t.Fatalf("a create of a branch that was there: %v, want ALREADY_EXISTS", err)
	}
}

// What an attacker (or another user) controls here: the branch of that name that
// is in the project when a create's answer is lost. When someone else made it from
// another source meanwhile, or it was there before the create began, the retried
// create's ALREADY_EXISTS is a failure that says so (ErrBranchExists) and names the
// difference: the caller never takes that branch (and its data) for the one asked,
// and it is left as it was (not deleted, not changed).
func TestCreateBranch_ALostAnswerNeverAdoptsABranchMadeDifferently(t *testing.T) {
	testenv.NeedPostgres(t)
	e := lakebasetest.Start(t)
	api, direct, lose, project := branchClients(t, e)
	ctx := context.Background()
	main := e.Endpoint[:strings.Index(e.Endpoint, "/endpoints/")]

	// Someone makes "dev" first, then "feature" from "dev" in place of the lost create.
	made := func(id, source string) workspace.Branch {
		op, err := direct.CreateBranch(ctx, workspace.CreateBranchRequest{Project: project, BranchID: id, Source: source})
		if err != nil {
			t.Fatalf("the other branch %s: %v", id, err)
		}
		b, err := op.Wait(ctx)
		if err != nil {
			t.Fatalf("the other branch %s: %v", id, err)
		}
		return b
	}
	dev := made("dev", main)
	lose.loseNext(func(*http.Request) { made("feature", dev.Name) })
	op, err := api.CreateBranch(ctx, workspace.CreateBranchRequest{Project: project, BranchID: "feature", Source: main})
	var be *workspace.BranchExistsError
	if !errors.Is(err, workspace.ErrBranchExists) || !errors.As(err, &be) || op != nil {
		t.Fatalf("create branch after a lost answer, with another branch there: %v, %v", op, err)
	}
	for _, m := range []string{project + "/branches/feature", "source_branch " + dev.Name, "asked " + main} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("the error does not say %s: %v", m, err)
		}
	}
	if got, err := direct.GetBranch(ctx, workspace.GetBranchRequest{Name: project + "/branches/feature"}); err != nil || got.Source() != dev.Name {
		t.Fatalf("the other branch was changed: %+v, %v", got, err)
	}
}

// A branch of the name and source asked that was made before the create began
// (it was there all along; the lost attempt made nothing) is not taken for the one
// asked: the service's clock may differ from this one by a minute, not an hour.
func TestCreateBranch_ALostAnswerNeverAdoptsABranchMadeBefore(t *testing.T) {
	const main = "projects/p/branches/main"
	for _, c := range []struct {
		made  time.Duration // before now
		adopt bool
	}{{time.Hour, false}, {10 * time.Second, true}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodPost:
				w.WriteHeader(http.StatusConflict)
				w.Write([]byte(`{"error_code":"ALREADY_EXISTS","message":"branch exists"}`))
			case strings.HasSuffix(r.URL.Path, "/branches/feature"):
				fmt.Fprintf(w, `{"name":"projects/p/branches/feature","create_time":%q,"status":{"current_state":"READY","source_branch":%q}}`,
					time.Now().Add(-c.made).UTC().Format(time.RFC3339Nano), main)
			default:
				http.NotFound(w, r)
			}
		}))
		first := true
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if first {
				first = false
				return nil, io.ErrUnexpectedEOF // the first attempt's connection dropped once sent
			}
			return http.DefaultTransport.RoundTrip(r)
		})}
		api := workspace.New(srv.URL, static("tok"), hc, workspace.Options{Retry: httpx.Retry{MaxAttempts: 3, Base: time.Millisecond, Max: time.Millisecond}})
		op, err := api.CreateBranch(context.Background(), workspace.CreateBranchRequest{Project: "projects/p", BranchID: "feature", Source: main})
		srv.Close()
		if !c.adopt {
			if !errors.Is(err, workspace.ErrBranchExists) || !strings.Contains(err.Error(), "before this create began") {
				t.Errorf("a branch made %v ago: %v, want ErrBranchExists naming when it was made", c.made, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("a branch made %v ago: %v", c.made, err)
		}
		if b, err := op.Wait(context.Background()); err != nil || b.Name != "projects/p/branches/feature" {
			t.Errorf("a branch made %v ago: %+v, %v", c.made, b, err)
		}
	}
}

// lostCreateServer plays a service whose first branch create's answer is lost
// (the branch was made) and whose retry is answered ALREADY_EXISTS; the branch's
// reads are answered by get, called with the number of the read (0 first).
func lostCreateServer(t *testing.T, get func(n int) string) *workspace.Client {
	t.Helper()
	var reads int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error_code":"ALREADY_EXISTS","message":"branch exists"}`))
		case strings.HasSuffix(r.URL.Path, "/branches/feature"):
			body := get(reads)
			reads++
			if body == "" {
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"error_code":"NOT_FOUND","message":"no such branch"}`))
				return
			}
			w.Write([]byte(body))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	first := true
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if first {
			first = false
			return nil, io.ErrUnexpectedEOF // the first attempt's connection dropped once sent
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	return workspace.New(srv.URL, static("tok"), hc, workspace.Options{Retry: httpx.Retry{MaxAttempts: 3, Base: time.Millisecond, Max: time.Millisecond}})
}

func branchBody(name, state, source string, made time.Time) string {
	return fmt.Sprintf(`{"name":%q,"create_time":%q,"status":{"current_state":%q,"source_branch":%q}}`,
		name, made.UTC().Format(time.RFC3339Nano), state, source)
}

// What an attacker (or another user) controls here: the branch of the name while
// the operation of a create whose answer was lost waits for it to be READY. The
// branch read back and found to be the one asked for is the only one Wait returns:
// when it is deleted and another branch of the name made (from another source, or
// the same) while Wait polls, Wait fails with ErrBranchExists; it never returns the
// other branch, nor a read that names another branch or none.
func TestCreateBranch_WaitNeverReturnsABranchRemadeWhileItWaited(t *testing.T) {
	const main, dev, name = "projects/p/branches/main", "projects/p/branches/dev", "projects/p/branches/feature"
	made := time.Now()
	for _, c := range []struct {
		what  string
		later string // the branch's reads after the first
	}{
		{"remade from another source", branchBody(name, "READY", dev, made.Add(2*time.Second))},
		{"remade from the same source", branchBody(name, "READY", main, made.Add(2*time.Second))},
		{"a read naming another branch", branchBody("projects/p/branches/other", "READY", main, made)},
		{"a read naming no branch", `{}`},
		{"a read with no status nor source", fmt.Sprintf(`{"name":%q,"create_time":%q}`, name, made.UTC().Format(time.RFC3339Nano))},
	} {
		api := lostCreateServer(t, func(n int) string {
			if n == 0 {
				return branchBody(name, "INIT", main, made)
			}
			return c.later
		})
		op, err := api.CreateBranch(context.Background(), workspace.CreateBranchRequest{Project: "projects/p", BranchID: "feature", Source: main})
		if err != nil {
			t.Fatalf("%s: create: %v", c.what, err)
		}
		b, err := op.Wait(context.Background())
		if !errors.Is(err, workspace.ErrBranchExists) || b.Name != "" {
			t.Errorf("%s: Wait: %+v, %v; want ErrBranchExists", c.what, b, err)
		}
	}
}

// A Wait that failed (its context ended, a read of the branch failed) leaves the
// operation as it was: the next Wait polls the same branch again and returns it
// once it is READY.
func TestCreateBranch_WaitAfterAFailedWaitPollsTheSameBranch(t *testing.T) {
	const main, name = "projects/p/branches/main", "projects/p/branches/feature"
	made := time.Now()
	api := lostCreateServer(t, func(n int) string {
		switch n {
		case 0:
			return branchBody(name, "INIT", main, made)
		case 1:
			return `{"error_code":"INTERNAL_ERROR"` // a read cut short
		}
		return branchBody(name, "READY", main, made)
	})
	op, err := api.CreateBranch(context.Background(), workspace.CreateBranchRequest{Project: "projects/p", BranchID: "feature", Source: main})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(context.Background()); err == nil {
		t.Fatal("Wait: a read cut short did not fail it")
	}
	b, err := op.Wait(context.Background())
	if err != nil || b.Name != name || b.Status.CurrentState != "READY" {
		t.Fatalf("the second Wait: %+v, %v", b, err)
	}
}

// What an attacker (or another user) controls here: the lifetime of the branch of
// the name when a create's answer is lost. A branch from the source asked, made
// after the create began, is still not the one asked for when it shows another
// lifetime: one that expires when none was asked (it would vanish with the
// caller's data), one that lives on or for another ttl when a ttl was asked.
func TestCreateBranch_ALostAnswerNeverAdoptsABranchOfAnotherLifetime(t *testing.T) {
	const main, name = "projects/p/branches/main", "projects/p/branches/feature"
	made := time.Now()
	at := func(d time.Duration) string { return made.Add(d).UTC().Format(time.RFC3339Nano) }
	for _, c := range []struct {
		what    string
		ttl     time.Duration
		expires string // the branch's expire_time; "" for none shown
		adopt   bool
	}{
		{"a day's branch, asked an hour", time.Hour, at(24 * time.Hour), false},
		{"an hour's branch, asked none", 0, at(time.Hour), false},
		{"an unreadable expiry", time.Hour, "soon", false},
		{"an hour's branch, asked an hour", time.Hour, at(time.Hour + 2*time.Second), true},
		{"no expiry shown, asked an hour", time.Hour, "", true},
		{"no expiry, asked none", 0, "", true},
	} {
		api := lostCreateServer(t, func(int) string {
			return fmt.Sprintf(`{"name":%q,"create_time":%q,"expire_time":%q,"status":{"current_state":"READY","source_branch":%q}}`,
				name, at(0), c.expires, main)
		})
		op, err := api.CreateBranch(context.Background(), workspace.CreateBranchRequest{Project: "projects/p", BranchID: "feature", Source: main, TTL: c.ttl})
		if !c.adopt {
			if !errors.Is(err, workspace.ErrBranchExists) || op != nil {
				t.Errorf("%s: %v, %v; want ErrBranchExists", c.what, op, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.what, err)
			continue
		}
		if b, err := op.Wait(context.Background()); err != nil || b.Name != name {
			t.Errorf("%s: %+v, %v", c.what, b, err)
		}
	}
}

// A read-back answered with another branch (or with none: an empty answer) is not
// the branch asked for, whatever its source and age: the caller never gets a
// branch of another name, nor an empty one, from a create.
func TestCreateBranch_ALostAnswerNeverAdoptsAReadOfAnotherName(t *testing.T) {
	const main = "projects/p/branches/main"
	for _, body := range []string{
		branchBody("projects/p/branches/other", "READY", main, time.Now()),
		branchBody("", "READY", main, time.Now()),
	} {
		api := lostCreateServer(t, func(int) string { return body })
		op, err := api.CreateBranch(context.Background(), workspace.CreateBranchRequest{Project: "projects/p", BranchID: "feature", Source: main})
		if !errors.Is(err, workspace.ErrBranchExists) || op != nil {
			var b workspace.Branch
			if op != nil {
				b, _ = op.Wait(context.Background())
			}
			t.Errorf("a read-back of %s: the branch %q, %v; want ErrBranchExists", body, b.Name, err)
		}
	}
}

// A retried create answered 409 for something else than the branch (a conflict
// of the project, say), when the read-back finds no branch of the name, is the
// service's answer as it is: not ErrBranchExists (no branch exists; the error is
// not permanent on its account).
func TestCreateBranch_ALostAnswerThenAConflictWithNoBranchIsTheServicesError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error_code":"RESOURCE_CONFLICT","message":"the project is being updated"}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error_code":"NOT_FOUND","message":"no such branch"}`))
	}))
	defer srv.Close()
	first := true
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if first {
			first = false
			return nil, io.ErrUnexpectedEOF
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	api := workspace.New(srv.URL, static("tok"), hc, workspace.Options{Retry: httpx.Retry{MaxAttempts: 3, Base: time.Millisecond, Max: time.Millisecond}})
	_, err := api.CreateBranch(context.Background(), workspace.CreateBranchRequest{Project: "projects/p", BranchID: "feature", Source: "projects/p/branches/main"})
	var ae *workspace.APIError
	if errors.Is(err, workspace.ErrBranchExists) || !errors.As(err, &ae) || ae.ErrorCode != "RESOURCE_CONFLICT" {
		t.Fatalf("a conflict with no branch made: %v; want the service's RESOURCE_CONFLICT", err)
	}
}
