package main

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// lakebase role: a service principal without a role is refused; role create gives
// it one through the roles API and it logs in; list shows it; delete removes it
// and it is refused again. -password makes a native role whose printed password
// logs in; nothing else prints it.
func TestRole_CreateListDeleteAndPasswordRoles(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	dsn := emu.OAuthClientDSN()
	const app = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	if err := emu.AddServicePrincipal(app, "app-secret"); err != nil {
		t.Fatal(err)
	}
	if err := emu.DropRole(app); err != nil {
		t.Fatal(err)
	}
	ping := func() error {
		db, err := sql.Open("lakebase", emu.OAuthClientDSN("OAuthClientId="+app, "OAuthClientSecret=app-secret"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		return db.PingContext(context.Background())
	}
	if err := ping(); !errors.Is(err, lakebase.ErrNoRole) {
		t.Fatalf("before role create: %v", err)
	}
	emu.ResetCounts()
	if o, e, code := lakebaseCmd(t, dsn, nil, "role", "create", app); code != 0 || !strings.Contains(o, "OAuth") {
		t.Fatalf("role create (%d): %s %s", code, o, e)
	}
	if emu.Count(lakebasetest.EPRoles) == 0 {
		t.Fatal("role create did not use the roles API")
	}
	if err := ping(); err != nil {
		t.Fatalf("after role create: %v", err)
	}
	o, e, code := lakebaseCmd(t, dsn, nil, "role", "list")
	if code != 0 || !strings.Contains(o, app+"\tSERVICE_PRINCIPAL\tLAKEBASE_OAUTH_V1") || !strings.Contains(o, emu.User.Email+"\tUSER") {
		t.Fatalf("role list (%d): %s %s", code, o, e)
	}
	if o, e, code := lakebaseCmd(t, dsn, nil, "role", "delete", app); code != 0 {
		t.Fatalf("role delete (%d): %s %s", code, o, e)
	}
	if err := ping(); !errors.Is(err, lakebase.ErrNoRole) {
		t.Fatalf("after role delete: %v", err)
	}

	o, e, code = lakebaseCmd(t, dsn, nil, "role", "create", "-password", "report_reader")
	if code != 0 {
		t.Fatalf("role create -password (%d): %s %s", code, o, e)
	}
	lines := strings.Split(strings.TrimSpace(o), "\n")
	if len(lines) < 2 || len(lines[1]) < 24 || strings.Contains(e, lines[1]) {
		t.Fatalf("role create -password printed: %q (stderr %q)", o, e)
	}
	secret := lines[1]
	db, err := sql.Open("lakebase", emu.PasswordDSN("report_reader", secret))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var who string
	if err := db.QueryRow("SELECT current_user").Scan(&who); err != nil || who != "report_reader" {
		t.Fatalf("the password role logs in as %q: %v", who, err)
	}
	wrong, _ := sql.Open("lakebase", emu.PasswordDSN("report_reader", "not-"+secret))
	defer wrong.Close()
	if err := wrong.Ping(); err == nil {
		t.Fatal("a wrong password logged in")
	}
	if o, _, _ := lakebaseCmd(t, dsn, nil, "role", "list"); !strings.Contains(o, "report_reader\t-\tPG_PASSWORD_SCRAM_SHA_256") {
		t.Fatalf("role list: %s", o)
	}

	// Provisioned: the instance's roles API.
	pk := emu.OAuthClientDSN("Endpoint=", "Instance="+emu.Instance)
	if o, e, code := lakebaseCmd(t, pk, nil, "role", "create", "analysts"); code != 0 {
		t.Fatalf("role create on the instance (%d): %s %s", code, o, e)
	}
	if o, _, _ := lakebaseCmd(t, pk, nil, "role", "list"); !strings.Contains(o, "analysts\tGROUP") {
		t.Fatalf("role list of the instance: %s", o)
	}
	for _, args := range [][]string{{"role", "create"}, {"role", "create", "a", "b"}, {"role", "create", "-type", "robot", "x"}, {"role", "delete", "nobody-here"}} {
		if _, e, code := lakebaseCmd(t, dsn, nil, args...); code == 0 || e == "" {
			t.Fatalf("%v succeeded", args)
		}
	}
}

// Postgres role names are case-sensitive: with roles Robert and robert on the
// branch (the names in the workspace and the name typed are the caller's to
// choose), role delete robert deletes robert and only robert; ROBERT, which
// either could be meant by, deletes nothing and names both; a name that differs
// from one role only in case deletes nothing and names it. The same on a
// Provisioned instance.
func TestRole_DeleteDeletesOnlyTheRoleOfExactlyThatName(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	for _, r := range []string{"Robert", "robert", "Alice"} {
		if err := emu.CreateRole(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, dsn string }{
		{"branch", emu.OAuthClientDSN()},
		{"instance", emu.OAuthClientDSN("Endpoint=", "Instance="+emu.Instance)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			has := func(role string) bool {
				o, e, code := lakebaseCmd(t, tc.dsn, nil, "role", "list")
				if code != 0 {
					t.Fatalf("role list (%d): %s", code, e)
				}
				return strings.Contains("\n"+o, "\n"+role+"\t")
			}
			if tc.name == "instance" {
				if err := emu.CreateRole("robert"); err != nil {
					t.Fatal(err)
				}
			}
			if !has("Robert") || !has("robert") {
				t.Fatal("the roles to test with are not listed")
			}
			if _, e, code := lakebaseCmd(t, tc.dsn, nil, "role", "delete", "ROBERT"); code == 0 ||
				!strings.Contains(e, "ambiguous") || !strings.Contains(e, `"Robert"`) || !strings.Contains(e, `"robert"`) {
				t.Fatalf("role delete ROBERT (%d): %s", code, e)
			}
			if _, e, code := lakebaseCmd(t, tc.dsn, nil, "role", "delete", "alice"); code == 0 || !strings.Contains(e, `no role "alice"`) || !strings.Contains(e, `"Alice"`) {
				t.Fatalf("role delete alice (%d): %s", code, e)
			}
			if !has("Robert") || !has("robert") || !has("Alice") {
				t.Fatal("a refused delete deleted a role")
			}
			if o, e, code := lakebaseCmd(t, tc.dsn, nil, "role", "delete", "robert"); code != 0 || !strings.Contains(o, "Deleted the role robert ") {
				t.Fatalf("role delete robert (%d): %s %s", code, o, e)
			}
			if has("robert") || !has("Robert") {
				t.Fatal("role delete robert did not delete robert, and only robert")
			}
		})
	}
}

// role create -password prints a connection string whose every value is quoted by
// the grammar's own rules: a role name holding quotes, ';' and spaces (the caller's
// to choose) parses back to itself and the printed password, with the real host,
// port and database, and the string logs in as that role.
func TestRole_PasswordRolesConnectionStringParsesBackToTheSameRole(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	const name = `we"ird; DROP ROLE x; --`
	o, e, code := lakebaseCmd(t, emu.OAuthClientDSN(), nil, "role", "create", "-password", name)
	if code != 0 {
		t.Fatalf("role create -password (%d): %s %s", code, o, e)
	}
	lines := strings.Split(strings.TrimSpace(o), "\n")
	if len(lines) != 4 {
		t.Fatalf("role create -password printed: %q", o)
	}
	secret, dsn := lines[1], lines[3]
	cfg, err := lakebase.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("the printed connection string does not parse: %v", err)
	}
	if cfg.User != name || cfg.Password != secret || cfg.AuthScheme != lakebase.AuthPassword ||
		cfg.Server != emu.Host || cfg.Port != emu.Port || cfg.Database != emu.Database {
		t.Fatalf("the printed connection string parses to user %q, %s:%d/%s", cfg.User, cfg.Server, cfg.Port, cfg.Database)
	}
	db, err := sql.Open("lakebase", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var who string
	if err := db.QueryRow("SELECT current_user").Scan(&who); err != nil || who != name {
		t.Fatalf("the printed connection string logs in as %q: %v", who, err)
	}
}
