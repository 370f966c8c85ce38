package lakebase_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/workspace"
)

// spWithoutRole adds a service principal that has no Postgres role.
func spWithoutRole(t *testing.T, e *lakebasetest.Server, id string) {
	t.Helper()
	if err := e.AddServicePrincipal(id, "secret-of-"+id); err != nil {
		t.Fatal(err)
	}
	if err := e.DropRole(id); err != nil {
		t.Fatal(err)
	}
}

// A login refused because the identity has no role: two mints at most, then the
// roles API (every page) says the role is missing, and the error names the
// identity, the branch and the fixes.
func TestMissingRole_SaysSoWithinTwoMints(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{PageSize: 1})
	const app = "7b6a5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
	spWithoutRole(t, e, app)
	db, _ := newDB(t, e.OAuthClientDSN("OAuthClientId="+app, "OAuthClientSecret=secret-of-"+app))
	e.ResetCounts()
	err := db.PingContext(context.Background())
	var ne *lakebase.NoRoleError
	if !errors.As(err, &ne) || !errors.Is(err, lakebase.ErrNoRole) || !errors.Is(err, lakebase.ErrLoginRefused) || ne.Unknown {
		t.Fatalf("a login without a role: %v", err)
	}
	for _, want := range []string{app, "branch projects/lakebase/branches/main", "lakebase role create " + app, "database resource",
		"databricks_create_role('" + app + "', 'SERVICE_PRINCIPAL')", "password authentication failed for user '" + app + "'"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("the error does not say %q: %v", want, err)
		}
	}
	if n := e.Count(lakebasetest.EPCredAutoscaling); n != 2 {
		t.Fatalf("%d credential mints for one refused connect, want 2", n)
	}
	if n := e.Count(lakebasetest.EPRoles); n < 2 {
		t.Fatalf("the roles were listed in %d requests; with one role a page, every page of the two roles is 2", n)
	}
	for _, s := range e.IssuedSecrets() {
		if strings.Contains(err.Error(), s) {
			t.Fatal("the error holds a secret")
		}
	}

	// Provisioned: the instance's roles.
	dbp, _ := newDB(t, e.OAuthClientDSN("Endpoint=", "Instance="+e.Instance, "OAuthClientId="+app, "OAuthClientSecret=secret-of-"+app))
	err = dbp.Ping()
	if !errors.As(err, &ne) || ne.Where != "instance "+e.Instance {
		t.Fatalf("a login without a role on the instance: %v", err)
	}

	// The roles API refused (403): the role may be missing, and how to check.
	e.SetPermissionDenied(lakebasetest.EPRoles, true)
	err = db.Ping()
	if !errors.As(err, &ne) || !ne.Unknown || !strings.Contains(err.Error(), "may have no Postgres role") || !strings.Contains(err.Error(), "lakebase role list") {
		t.Fatalf("a login without a role, roles API refused: %v", err)
	}
	e.SetPermissionDenied(lakebasetest.EPRoles, false)

	// A refused login of an identity that has a role is not called a missing role.
	if err := e.CreateRole(app); err != nil {
		t.Fatal(err)
	}
	e.RevokeAllCredentials()
	if err := db.Ping(); err != nil {
		t.Fatalf("with a role (a revoked credential heals): %v", err)
	}
}

// The workspace client's roles calls against the emulator, as the Go SDK sends
// them: a role made for a service principal lets it log in; get, list (every page)
// and delete; the Provisioned instance's roles likewise.
func TestRoles_WorkspaceClientBothAPIs(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{PageSize: 2})
	const app = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	spWithoutRole(t, e, app)
	c, err := lakebase.NewConnector(e.OAuthClientDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	api := workspace.New(e.URL, c.TokenSource(), c.HTTPClient(), workspace.Options{})
	ctx := context.Background()
	branch := "projects/lakebase/branches/main"
	op, err := api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: branch, Spec: workspace.RoleSpec{
		PostgresRole: app, IdentityType: workspace.RoleIdentityServicePrincipal, AuthMethod: workspace.RoleAuthOAuth,
		Attributes: &workspace.RoleAttributes{Createdb: true}}})
	if err != nil {
		t.Fatal(err)
	}
	role, err := op.Wait(ctx)
	if err != nil || role.Name != branch+"/roles/"+app || role.PostgresRole() != app {
		t.Fatalf("create role: %+v, %v", role, err)
	}
	got, err := api.GetRole(ctx, workspace.GetRoleRequest{Name: role.Name})
	if err != nil || got.Status == nil || got.Status.AuthMethod != workspace.RoleAuthOAuth || got.Status.IdentityType != workspace.RoleIdentityServicePrincipal || got.Status.Attributes == nil || !got.Status.Attributes.Createdb {
		t.Fatalf("get role: %+v, %v", got.Status, err)
	}
	db, _ := newDB(t, e.OAuthClientDSN("OAuthClientId="+app, "OAuthClientSecret=secret-of-"+app))
	if u := currentUser(t, db); u != app {
		t.Fatalf("logged in as %q", u)
	}
	if _, err := api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: branch, Spec: workspace.RoleSpec{PostgresRole: app, IdentityType: workspace.RoleIdentityServicePrincipal}}); err == nil {
		t.Fatal("a second role of one name was made")
	}
	if _, err := api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: branch, Spec: workspace.RoleSpec{PostgresRole: "nobody@example.com", IdentityType: workspace.RoleIdentityUser}}); err == nil {
		t.Fatal("a role for an unknown user was made")
	}
	roles, err := api.ListRoles(ctx, workspace.ListRolesRequest{Branch: branch})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range roles {
		names = append(names, r.PostgresRole())
	}
	if len(roles) < 3 || !strings.Contains(strings.Join(names, ","), app) || !strings.Contains(strings.Join(names, ","), e.User.Email) {
		t.Fatalf("list roles (2 a page): %v", names)
	}
	dop, err := api.DeleteRole(ctx, workspace.DeleteRoleRequest{Name: role.Name})
	if err == nil {
		_, err = dop.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(0)
	if err := db.Ping(); !errors.Is(err, lakebase.ErrNoRole) {
		t.Fatalf("after delete role: %v", err)
	}
	if _, err := api.GetRole(ctx, workspace.GetRoleRequest{Name: "projects/lakebase/branches/main/roles/../x"}); !errors.Is(err, workspace.ErrResourceName) {
		t.Fatalf("a hostile role name: %v", err)
	}

	ir, err := api.CreateInstanceRole(ctx, workspace.CreateInstanceRoleRequest{Instance: e.Instance, Role: workspace.InstanceRole{Name: app, IdentityType: workspace.RoleIdentityServicePrincipal, MembershipRole: workspace.RoleMembershipSuperuser}})
	if err != nil || ir.Name != app || ir.MembershipRole != workspace.RoleMembershipSuperuser {
		t.Fatalf("create instance role: %+v, %v", ir, err)
	}
	if got, err := api.GetInstanceRole(ctx, workspace.GetInstanceRoleRequest{Instance: e.Instance, Name: app}); err != nil || got.IdentityType != workspace.RoleIdentityServicePrincipal {
		t.Fatalf("get instance role: %+v, %v", got, err)
	}
	irs, err := api.ListInstanceRoles(ctx, workspace.ListInstanceRolesRequest{Instance: e.Instance})
	if err != nil || len(irs) < 3 {
		t.Fatalf("list instance roles: %d, %v", len(irs), err)
	}
	if err := api.DeleteInstanceRole(ctx, workspace.DeleteInstanceRoleRequest{Instance: e.Instance, Name: app}); err != nil {
		t.Fatal(err)
	}
	if err := api.DeleteInstanceRole(ctx, workspace.DeleteInstanceRoleRequest{Instance: e.Instance, Name: app, AllowMissing: true}); err != nil {
		t.Fatalf("delete with allow_missing: %v", err)
	}
}

// lakebasetest.Branch with Roles: a second identity, without a role on the parent,
// logs in to the new branch.
func TestBranch_RolesOptionLetsAnotherIdentityLogIn(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	const app = "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"
	spWithoutRole(t, e, app)
	dsn := lakebasetest.Branch(t, e.OAuthClientDSN(), lakebasetest.BranchOptions{Roles: []workspace.RoleSpec{
		{PostgresRole: app, IdentityType: workspace.RoleIdentityServicePrincipal}}})
	cfg, err := lakebase.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OAuthClientID, cfg.OAuthClientSecret = app, "secret-of-"+app
	c, err := lakebase.NewConnectorFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	if u := currentUser(t, db); u != app {
		t.Fatalf("on the branch: %q", u)
	}
	main, _ := newDB(t, e.OAuthClientDSN("OAuthClientId="+app, "OAuthClientSecret=secret-of-"+app))
	if err := main.Ping(); !errors.Is(err, lakebase.ErrNoRole) {
		t.Fatalf("on the parent: %v", err)
	}
}

// The driver looks for a refused identity's role by its exact name: with a role
// Robert on the branch and none for the service principal robert, robert's login
// is a missing role (Robert is another role); once robert has its role, it logs
// in as robert. The same on a Provisioned instance.
func TestMissingRole_ARoleDifferingOnlyInCaseIsAnotherRole(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t)
	spWithoutRole(t, e, "robert")
	if err := e.CreateRole("Robert"); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"Endpoint=", "Instance=" + e.Instance}} {
		db, _ := newDB(t, e.OAuthClientDSN(append(extra, "OAuthClientId=robert", "OAuthClientSecret=secret-of-robert")...))
		var ne *lakebase.NoRoleError
		if err := db.Ping(); !errors.As(err, &ne) || ne.Unknown || ne.Identity != "robert" {
			t.Fatalf("%v: robert without a role, Robert with one: %v", extra, err)
		}
	}
	if err := e.CreateRole("robert"); err != nil {
		t.Fatal(err)
	}
	db, _ := newDB(t, e.OAuthClientDSN("OAuthClientId=robert", "OAuthClientSecret=secret-of-robert"))
	if u := currentUser(t, db); u != "robert" {
		t.Fatalf("logged in as %q", u)
	}
}
