package workspace_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase/internal/httpx"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/workspace"
)

// loseAnswers stands between the client and the emulator and loses the answer of
// the next role or branch create: it lets the emulator apply the POST (or, with instead set,
// runs instead in its place: another client making its own role), then drops the
// connection without a byte of answer, as a timeout or a proxy losing the
// connection does. Every other request is relayed.
type loseAnswers struct {
	mu      sync.Mutex
	lose    bool                  // the next role create's answer is lost
	instead func(r *http.Request) // runs in place of the lost create, when set
	posts   []string              // role and branch creates seen, in order
	applied int                   // status of the lost create's real answer
}

func (l *loseAnswers) loseNext(instead func(*http.Request)) {
	l.mu.Lock()
	l.lose, l.instead = true, instead
	l.mu.Unlock()
}

func startLosingProxy(t *testing.T, target string) (*httptest.Server, *loseAnswers) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	l := &loseAnswers{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/roles") && !strings.HasSuffix(r.URL.Path, "/branches") {
			rp.ServeHTTP(w, r)
			return
		}
		l.mu.Lock()
		l.posts = append(l.posts, r.URL.String())
		lose, instead := l.lose, l.instead
		l.lose, l.instead = false, nil
		l.mu.Unlock()
		if !lose {
			rp.ServeHTTP(w, r)
			return
		}
		if instead != nil {
			instead(r)
		} else {
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r) // the service applies it ...
			l.mu.Lock()
			l.applied = rec.Code
			l.mu.Unlock()
		}
		conn, _, err := w.(http.Hijacker).Hijack() // ... and its answer is lost
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv, l
}

func (l *loseAnswers) creates() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.posts...)
}

// A role create whose answer is lost after the service made the role (a timeout,
// a dropped connection) is retried; the retry's ALREADY_EXISTS is then checked
// against the role read back: when it is exactly the role asked for, the create
// succeeds with it, and one role exists. What a caller sees is never a failure
// for a role that was made, nor a second role. Both APIs (Autoscaling and
// Provisioned), through a proxy that loses the first answer.
func TestCreateRole_ALostAnswerThenAlreadyExistsIsTheRoleMade(t *testing.T) {
	testenv.NeedPostgres(t)
	e := lakebasetest.Start(t)
	proxy, lose := startLosingProxy(t, e.URL)
	tok, err := e.UserToken(e.User.Email)
	if err != nil {
		t.Fatal(err)
	}
	api := workspace.New(proxy.URL, static(tok), nil, workspace.Options{Retry: httpx.Retry{MaxAttempts: 3, Base: time.Millisecond}})
	ctx := context.Background()
	branch := e.Endpoint[:strings.Index(e.Endpoint, "/endpoints/")]

	lose.loseNext(nil)
	spec := workspace.RoleSpec{PostgresRole: "analysts", IdentityType: workspace.RoleIdentityGroup, AuthMethod: workspace.RoleAuthOAuth,
		Attributes: &workspace.RoleAttributes{Createdb: true}}
	op, err := api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: branch, Spec: spec})
	if err != nil {
		t.Fatalf("create role after a lost answer: %v", err)
	}
	r, err := op.Wait(ctx)
	if err != nil || r.PostgresRole() != "analysts" || r.Name != branch+"/roles/analysts" {
		t.Fatalf("the role made: %+v, %v", r, err)
	}
	if got := lose.creates(); len(got) != 2 || lose.applied != http.StatusOK {
		t.Fatalf("role creates sent: %q (the lost one answered %d); want the lost one applied and one retry", got, lose.applied)
	}
	roles, err := api.ListRoles(ctx, workspace.ListRolesRequest{Branch: branch})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range roles {
		if strings.EqualFold(r.PostgresRole(), "analysts") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d roles named analysts", n)
	}

	lose.loseNext(nil)
	ir, err := api.CreateInstanceRole(ctx, workspace.CreateInstanceRoleRequest{Instance: e.Instance,
		Role: workspace.InstanceRole{Name: "auditors", IdentityType: workspace.RoleIdentityGroup, MembershipRole: workspace.RoleMembershipSuperuser}})
	if err != nil || ir.Name != "auditors" || ir.MembershipRole != workspace.RoleMembershipSuperuser {
		t.Fatalf("create instance role after a lost answer: %+v, %v", ir, err)
	}
	irs, err := api.ListInstanceRoles(ctx, workspace.ListInstanceRolesRequest{Instance: e.Instance})
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for _, r := range irs {
		if strings.EqualFold(r.Name, "auditors") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d instance roles named auditors", n)
	}

	// With no answer lost, ALREADY_EXISTS stays what it is: the role was there before.
	_, err = api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: branch, Spec: spec})
	var ae *workspace.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict {
		t.Fatalf("a create of a role that was there: %v, want ALREADY_EXISTS", err)
	}
}

// What an attacker (or another admin) controls here: the role of that name that
// is in the workspace when a create's answer is lost. When someone else made a
// role of the name differently meanwhile (another identity type, login method,
// membership), the retried create's ALREADY_EXISTS is a failure that says so and
// names the differences: the caller never takes that role for the one asked, and
// it is left as it was (not altered, not deleted).
func TestCreateRole_ALostAnswerNeverAdoptsARoleMadeDifferently(t *testing.T) {
	testenv.NeedPostgres(t)
	e := lakebasetest.Start(t)
	proxy, lose := startLosingProxy(t, e.URL)
	tok, err := e.UserToken(e.User.Email)
	if err != nil {
		t.Fatal(err)
	}
	direct := workspace.New(e.URL, static(tok), nil, workspace.Options{})
	api := workspace.New(proxy.URL, static(tok), nil, workspace.Options{Retry: httpx.Retry{MaxAttempts: 3, Base: time.Millisecond}})
	ctx := context.Background()
	branch := e.Endpoint[:strings.Index(e.Endpoint, "/endpoints/")]

	// Autoscaling: someone makes "analysts" a password role with no identity.
	lose.loseNext(func(*http.Request) {
		op, err := direct.CreateRole(ctx, workspace.CreateRoleRequest{Branch: branch, Spec: workspace.RoleSpec{PostgresRole: "analysts", AuthMethod: workspace.RoleAuthPassword}})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		if err != nil {
			t.Errorf("the other role: %v", err)
		}
	})
	op, err := api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: branch, Spec: workspace.RoleSpec{PostgresRole: "analysts",
		IdentityType: workspace.RoleIdentityGroup, AuthMethod: workspace.RoleAuthOAuth}})
	var re *workspace.RoleExistsError
	if !errors.Is(err, workspace.ErrRoleExists) || !errors.As(err, &re) || op != nil {
		t.Fatalf("create role after a lost answer, with another role there: %v, %v", op, err)
	}
	for _, m := range []string{`"analysts"`, "GROUP", "PG_PASSWORD_SCRAM_SHA_256", "LAKEBASE_OAUTH_V1"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("the error does not say %s: %v", m, err)
		}
	}
	roles, err := direct.ListRoles(ctx, workspace.ListRolesRequest{Branch: branch})
	if err != nil {
		t.Fatal(err)
	}
	r, err := workspace.FindRole(roles, "analysts", "")
	if err != nil || r.Status == nil || r.Status.AuthMethod != workspace.RoleAuthPassword || r.Status.IdentityType != "" {
		t.Fatalf("the other role was changed: %+v, %v", r.Status, err)
	}

	// Provisioned: someone makes "auditors" without the superuser membership asked.
	lose.loseNext(func(*http.Request) {
		if _, err := direct.CreateInstanceRole(ctx, workspace.CreateInstanceRoleRequest{Instance: e.Instance,
			Role: workspace.InstanceRole{Name: "auditors", IdentityType: workspace.RoleIdentityGroup}}); err != nil {
			t.Errorf("the other instance role: %v", err)
		}
	})
	_, err = api.CreateInstanceRole(ctx, workspace.CreateInstanceRoleRequest{Instance: e.Instance,
		Role: workspace.InstanceRole{Name: "auditors", IdentityType: workspace.RoleIdentityGroup, MembershipRole: workspace.RoleMembershipSuperuser}})
	if !errors.Is(err, workspace.ErrRoleExists) || !strings.Contains(err.Error(), "DATABRICKS_SUPERUSER") {
		t.Fatalf("create instance role after a lost answer, with another role there: %v", err)
	}
	got, err := direct.GetInstanceRole(ctx, workspace.GetInstanceRoleRequest{Instance: e.Instance, Name: "auditors"})
	if err != nil || got.MembershipRole != "" {
		t.Fatalf("the other instance role was changed: %+v, %v", got, err)
	}
}

// roundTripFunc is an http.RoundTripper of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Which lost attempts make a later ALREADY_EXISTS worth reading the role back
// for: only those that may have reached the service. After a first attempt that
// failed to connect (it cannot have made the role) or that the service declined (503 with Retry-After), the retry's ALREADY_EXISTS
// is the service's error as it is (the role was there before) and nothing is
// read back; after one whose connection dropped once the request was out, or
// that a proxy answered 502, the role is read back.
func TestCreateRole_OnlyALostAnswerThatMayHaveReachedTheServiceIsReadBack(t *testing.T) {
	for _, c := range []struct {
		name     string
		first    func(*http.Request) (*http.Response, error)
		readBack bool
	}{
		{"dial timed out", func(*http.Request) (*http.Response, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ETIMEDOUT}}
		}, false},
		{"503 with Retry-After", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"0"}}, Body: http.NoBody, Request: r}, nil
		}, true}, // Retry-After 0 asks for no wait: not a declined request
		{"503 declined", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"1"}}, Body: http.NoBody, Request: r}, nil
		}, false},
		{"connection dropped", func(*http.Request) (*http.Response, error) { return nil, io.ErrUnexpectedEOF }, true},
		{"502 from a proxy", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 502, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var sent []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				sent = append(sent, r.Method+" "+r.URL.Path)
				mu.Unlock()
				if r.Method == http.MethodPost {
					w.WriteHeader(http.StatusConflict)
					w.Write([]byte(`{"error_code":"ALREADY_EXISTS","message":"Role analysts already exists."}`))
					return
				}
				w.Write([]byte(`{"database_instance_roles":[{"name":"analysts","identity_type":"GROUP"}]}`))
			}))
			defer srv.Close()
			first := true
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if first {
					first = false
					return c.first(r)
				}
				return http.DefaultTransport.RoundTrip(r)
			})}
			api := workspace.New(srv.URL, static("tok"), hc, workspace.Options{Retry: httpx.Retry{MaxAttempts: 3, Base: time.Millisecond, Max: time.Millisecond}})
			r, err := api.CreateInstanceRole(context.Background(), workspace.CreateInstanceRoleRequest{Instance: "inst",
				Role: workspace.InstanceRole{Name: "analysts", IdentityType: workspace.RoleIdentityGroup}})
			mu.Lock()
			defer mu.Unlock()
			if c.readBack {
				if err != nil || r.Name != "analysts" || len(sent) != 2 || !strings.HasPrefix(sent[1], "GET ") {
					t.Fatalf("after a lost answer: %+v, %v; sent %q", r, err, sent)
				}
				return
			}
			var ae *workspace.APIError
			if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict || len(sent) != 1 {
				t.Fatalf("after an attempt that never reached the service: %v; sent %q", err, sent)
			}
		})
	}
}

// What the service controls here: the 409 answering the retry of a role create
// whose first answer was lost. When no role has the name (the lost attempt made
// none; the conflict was about something else, such as a role id another name
// took), the service's answer is returned as it is, not a RoleExistsError saying
// a role exists that does not. Both APIs.
func TestCreateRole_ALostAnswerThenAConflictWithNoRoleIsTheServicesError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error_code":"ALREADY_EXISTS","message":"role id analysts is taken"}`))
			return
		}
		w.Write([]byte(`{"roles":[{"name":"projects/p/branches/b/roles/x","status":{"postgres_role":"Analysts"}}],"database_instance_roles":[{"name":"Analysts"}]}`))
	}))
	defer srv.Close()
	client := func() *workspace.Client {
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
	check := func(what string, err error) {
		t.Helper()
		var ae *workspace.APIError
		if errors.Is(err, workspace.ErrRoleExists) || !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict {
			t.Errorf("%s: %v, want the service's 409", what, err)
		}
	}
	_, err := client().CreateRole(context.Background(), workspace.CreateRoleRequest{Branch: "projects/p/branches/b",
		Spec: workspace.RoleSpec{PostgresRole: "analysts", IdentityType: workspace.RoleIdentityGroup}})
	check("a branch role", err)
	_, err = client().CreateInstanceRole(context.Background(), workspace.CreateInstanceRoleRequest{Instance: "inst",
		Role: workspace.InstanceRole{Name: "analysts", IdentityType: workspace.RoleIdentityGroup}})
	check("an instance role", err)
}
