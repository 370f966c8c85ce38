package workspace_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase/workspace"
	"golang.org/x/oauth2"
)

func role(id, pg string) workspace.Role {
	return workspace.Role{Name: "projects/p/branches/b/roles/" + id, Status: &workspace.RoleStatus{RoleSpec: workspace.RoleSpec{PostgresRole: pg}}}
}

// FindRole matches a Postgres role name exactly (case-sensitive) and never
// guesses: a name only differing in case from one role is not found and names
// it; one that several roles could be meant by is ambiguous and names them all;
// several roles listed under one exact name are ambiguous too.
func TestFindRole_MatchesExactlyAndRefusesToGuess(t *testing.T) {
	roles := []workspace.Role{role("r-1", "Robert"), role("robert", "robert"), role("r-2", "Alice@Example.com")}
	for _, tc := range []struct {
		name, want string
		is         error
		mentions   []string
	}{
		{name: "robert", want: "projects/p/branches/b/roles/robert"},
		{name: "Robert", want: "projects/p/branches/b/roles/r-1"},
		{name: "ROBERT", is: workspace.ErrAmbiguousRole, mentions: []string{`"Robert"`, `"robert"`, "branch x", "case-sensitive"}},
		{name: "alice@example.com", is: workspace.ErrRoleNotFound, mentions: []string{`no role "alice@example.com"`, `"Alice@Example.com"`}},
		{name: "nobody", is: workspace.ErrRoleNotFound, mentions: []string{`no role "nobody" on branch x`}},
		{name: "", is: workspace.ErrRoleNotFound},
	} {
		got, err := workspace.FindRole(roles, tc.name, "branch x")
		if tc.is == nil {
			if err != nil || got.Name != tc.want {
				t.Errorf("FindRole(%q) = %q, %v; want %q", tc.name, got.Name, err, tc.want)
			}
			continue
		}
		var me *workspace.RoleMatchError
		if !errors.Is(err, tc.is) || !errors.As(err, &me) || got.Name != "" {
			t.Errorf("FindRole(%q) = %q, %v; want %v", tc.name, got.Name, err, tc.is)
			continue
		}
		for _, m := range tc.mentions {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("FindRole(%q): the error does not say %s: %v", tc.name, m, err)
			}
		}
	}
	twice := append(roles, role("robert-2", "robert"))
	if _, err := workspace.FindRole(twice, "robert", ""); !errors.Is(err, workspace.ErrAmbiguousRole) ||
		!strings.Contains(err.Error(), "roles/robert-2") || !strings.Contains(err.Error(), "roles/robert\"") {
		t.Errorf("two roles listed as robert: %v", err)
	}

	inst := []workspace.InstanceRole{{Name: "Robert"}, {Name: "robert"}}
	if r, err := workspace.FindInstanceRole(inst, "robert", "instance i"); err != nil || r.Name != "robert" {
		t.Errorf("FindInstanceRole(robert) = %q, %v", r.Name, err)
	}
	if _, err := workspace.FindInstanceRole(inst, "ROBERT", "instance i"); !errors.Is(err, workspace.ErrAmbiguousRole) {
		t.Errorf("FindInstanceRole(ROBERT): %v", err)
	}
}

// The role id asked for is the identity only when it keeps the rule as it is: a
// name is never lowered into an id that another role (robert for Robert) needs.
func TestRoleIDFor_NeverLowersANameIntoAnotherRolesId(t *testing.T) {
	for in, want := range map[string]string{
		"0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
		"robert":                               "robert",
		"Robert":                               "",
		"0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0": "",
		"alice@example.com":                    "",
	} {
		if got := workspace.RoleIDFor(in); got != want {
			t.Errorf("RoleIDFor(%q) = %q, want %q", in, got, want)
		}
	}
}

// What an attacker controls here: role names in the workspace (Postgres allows
// CREATE ROLE ".."). An empty name matches no role, even one the service lists
// with no name; a dot segment is never put in an instance role's path, where a
// proxy normalising the path would turn DELETE .../roles/.. into a delete of the
// instance itself.
func TestRoles_AnEmptyOrDotNameReachesNoRoleAndNoOtherResource(t *testing.T) {
	nameless := workspace.Role{Name: "projects/p/branches/b/roles/x"}
	if _, err := workspace.FindRole([]workspace.Role{nameless}, "", "branch x"); !errors.Is(err, workspace.ErrRoleNotFound) {
		t.Fatalf("an empty name: %v, want ErrRoleNotFound", err)
	}
	if _, err := workspace.FindInstanceRole([]workspace.InstanceRole{{InstanceName: "i"}}, "", "instance i"); !errors.Is(err, workspace.ErrRoleNotFound) {
		t.Fatalf("an empty instance role name: %v, want ErrRoleNotFound", err)
	}
	var hits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.Method+" "+r.URL.Path)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c := workspace.New(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "tok"}), srv.Client(), workspace.Options{})
	for _, name := range []string{".", ".."} {
		err := c.DeleteInstanceRole(context.Background(), workspace.DeleteInstanceRoleRequest{Instance: "my-inst", Name: name})
		if !errors.Is(err, workspace.ErrResourceName) {
			t.Fatalf("deleting role %q: %v, want ErrResourceName", name, err)
		}
		if _, err := c.GetInstanceRole(context.Background(), workspace.GetInstanceRoleRequest{Instance: "my-inst", Name: name}); !errors.Is(err, workspace.ErrResourceName) {
			t.Fatalf("getting role %q: %v, want ErrResourceName", name, err)
		}
	}
	if len(hits) > 0 {
		t.Fatalf("requests were sent: %v", hits)
	}
}
