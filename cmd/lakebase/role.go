package main

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/workspace"
)

const roleUsage = `usage: lakebase role <create|list|delete> [flags] [IDENTITY]

  create IDENTITY [-type user|service-principal|group] [-superuser] [-branch B]
        give an identity (an e-mail, a service principal's application id, a group
        name) a Postgres role that logs in with OAuth database credentials, on the
        connection string's branch or instance (-branch: another branch of its project)
  create -password NAME [-superuser] [-branch B]
        make a native Postgres role that logs in with a password; the password is
        made here, set as a SCRAM secret (never sent in clear), and printed once
  list [-branch B]
        the roles: name, identity type, how they log in
  delete IDENTITY [-branch B] [-reassign-to ROLE]
        drop a role (what it owns goes to -reassign-to, or is dropped)
`

var appID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// identityType is the identity a name stands for: an e-mail is a user, an
// application id a service principal, anything else a group.
func identityType(name, flagValue string) (workspace.RoleIdentityType, error) {
	switch strings.ToLower(flagValue) {
	case "user":
		return workspace.RoleIdentityUser, nil
	case "service-principal", "service_principal", "sp":
		return workspace.RoleIdentityServicePrincipal, nil
	case "group":
		return workspace.RoleIdentityGroup, nil
	case "":
	default:
		return "", fmt.Errorf("role: -type %q: must be user, service-principal or group", flagValue)
	}
	switch {
	case strings.Contains(name, "@"):
		return workspace.RoleIdentityUser, nil
	case appID.MatchString(name):
		return workspace.RoleIdentityServicePrincipal, nil
	}
	return workspace.RoleIdentityGroup, nil
}

// roleCmd runs "lakebase role ...".
func roleCmd(ctx context.Context, cfg *lakebase.Config, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	sub, args, fs, err := subcommandFlags("role", roleUsage, args, stderr)
	if err != nil {
		return err
	}
	typ := fs.String("type", "", "create: the identity's type: user, service-principal or group (default: from the name)")
	password := fs.Bool("password", false, "create: a native Postgres role with a password, printed once")
	superuser := fs.Bool("superuser", false, "create: make the role a member of databricks_superuser")
	branchFlag := fs.String("branch", "", "the branch (id or path) of the connection string's project; default: its branch")
	reassign := fs.String("reassign-to", "", "delete: the role that gets what the deleted one owns")
	// Flags may come before or after the identity.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	name := ""
	switch {
	case sub == "list" && len(pos) == 0:
	case (sub == "create" || sub == "delete") && len(pos) == 1 && strings.TrimSpace(pos[0]) != "":
		name = pos[0]
	case sub == "create" || sub == "delete":
		return fmt.Errorf("role %s: name exactly one identity (an e-mail, an application id or a group name)", sub)
	case sub == "list":
		return errors.New("role list: takes no arguments")
	default:
		fmt.Fprint(stderr, roleUsage)
		return fmt.Errorf("role: unknown subcommand %q", sub)
	}

	where, err := roleTarget(cfg, *branchFlag)
	if err != nil {
		return err
	}
	c, err := connector(cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	api := c.Workspace()
	if where.branch == "" && where.instance == "" {
		// Project without Branch: the project's default branch.
		branches, err := api.ListBranches(ctx, workspace.ListBranchesRequest{Project: "projects/" + where.project})
		if err != nil {
			return err
		}
		for _, b := range branches {
			if b.IsDefault() {
				where.branch = b.Name
			}
		}
		if where.branch == "" {
			return fmt.Errorf("role: project %s has no default branch; use -branch", where.project)
		}
	}
	switch sub {
	case "list":
		return listRoles(ctx, api, where, stdout)
	case "delete":
		return deleteRole(ctx, api, where, name, *reassign, stdout)
	}
	var members []workspace.RoleMembership
	if *superuser {
		members = []workspace.RoleMembership{workspace.RoleMembershipSuperuser}
	}
	var secret string
	if where.instance != "" {
		role := workspace.InstanceRole{Name: name, IdentityType: workspace.RoleIdentityPgOnly}
		if !*password {
			if role.IdentityType, err = identityType(name, *typ); err != nil {
				return err
			}
		}
		if *superuser {
			role.MembershipRole = workspace.RoleMembershipSuperuser
		}
		if _, err := api.CreateInstanceRole(ctx, workspace.CreateInstanceRoleRequest{Instance: where.instance, Role: role}); err != nil {
			return err
		}
	} else {
		spec := workspace.RoleSpec{PostgresRole: name, MembershipRoles: members, AuthMethod: workspace.RoleAuthOAuth}
		if *password {
			spec.AuthMethod = workspace.RoleAuthPassword
		} else if spec.IdentityType, err = identityType(name, *typ); err != nil {
			return err
		}
		op, err := api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: where.branch, Spec: spec})
		if err != nil {
			return err
		}
		if _, err := op.Wait(ctx); err != nil {
			return err
		}
	}
	if *password {
		// The service makes a password and tells nobody: set one, as its SCRAM secret
		// (the clear text never leaves this process), through the caller's own login.
		var at lakebase.Status
		if secret, at, err = setRolePassword(ctx, cfg, where, name, stderr); err != nil {
			return fmt.Errorf("role create: the role %q was made, but its password could not be set (the identity of the connection string needs CREATEROLE, as databricks_superuser members have): %w", name, err)
		}
		fmt.Fprintf(stdout, "Created the password role %q on %s. Its password, shown only now:\n%s\n", name, where, secret)
		fmt.Fprintf(stdout, "Connect with (this holds the password):\n%s\n", passwordDSN(cfg, at, name, secret))
		return nil
	}
	fmt.Fprintf(stdout, "Created the role %s on %s: it logs in with OAuth database credentials\n", name, where)
	return nil
}

// roleWhere is the branch (Autoscaling) or instance (Provisioned) of the roles.
type roleWhere struct{ project, branch, instance string }

func (w roleWhere) String() string {
	if w.instance != "" {
		return "instance " + w.instance
	}
	return "branch " + w.branch
}

// roleTarget reads the branch or instance from the connection string, or -branch.
func roleTarget(cfg *lakebase.Config, branchFlag string) (roleWhere, error) {
	if cfg.Instance != "" {
		if branchFlag != "" {
			return roleWhere{}, errors.New("role: -branch needs an Autoscaling connection string (Endpoint or Project), not Instance")
		}
		return roleWhere{instance: cfg.Instance}, nil
	}
	var w roleWhere
	switch {
	case cfg.Endpoint != "":
		p := strings.Split(cfg.Endpoint, "/")
		w.project, w.branch = p[1], strings.Join(p[:4], "/")
	case cfg.Project != "":
		w.project = strings.TrimPrefix(cfg.Project, "projects/")
		if cfg.Branch != "" {
			w.branch = "projects/" + w.project + "/branches/" + cfg.Branch[strings.LastIndex(cfg.Branch, "/")+1:]
		}
	default:
		return w, errors.New("role: the connection string names no database (set Endpoint, Project or Instance)")
	}
	if branchFlag != "" {
		full := branchFlag
		if !strings.HasPrefix(full, "projects/") {
			full = "projects/" + w.project + "/branches/" + branchFlag
		}
		if _, err := workspace.ResourcePath(full, "branches"); err != nil || strings.Count(full, "/") != 3 || !strings.HasPrefix(full, "projects/"+w.project+"/") {
			return w, fmt.Errorf("role: -branch %q: not a branch id or a branch path of project %s", branchFlag, w.project)
		}
		w.branch = full
	}
	return w, nil
}

func listRoles(ctx context.Context, api *workspace.Client, where roleWhere, stdout io.Writer) error {
	if where.instance != "" {
		roles, err := api.ListInstanceRoles(ctx, workspace.ListInstanceRolesRequest{Instance: where.instance})
		if err != nil {
			return err
		}
		for _, r := range roles {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", r.Name, r.IdentityType, r.MembershipRole)
		}
		return nil
	}
	roles, err := api.ListRoles(ctx, workspace.ListRolesRequest{Branch: where.branch})
	if err != nil {
		return err
	}
	for _, r := range roles {
		st := r.Status
		if st == nil {
			st = &workspace.RoleStatus{}
			if r.Spec != nil {
				st.RoleSpec = *r.Spec
			}
		}
		typ := string(st.IdentityType)
		if typ == "" {
			typ = "-"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", r.PostgresRole(), typ, st.AuthMethod)
	}
	return nil
}

// deleteRole deletes the one role whose Postgres name is exactly name
// (workspace.FindRole): a name that differs only in case is another role, and a
// name more than one role could mean deletes nothing.
func deleteRole(ctx context.Context, api *workspace.Client, where roleWhere, name, reassign string, stdout io.Writer) error {
	if where.instance != "" {
		roles, err := api.ListInstanceRoles(ctx, workspace.ListInstanceRolesRequest{Instance: where.instance})
		if err != nil {
			return err
		}
		r, err := workspace.FindInstanceRole(roles, name, where.String())
		if err != nil {
			return fmt.Errorf("%w (lakebase role list shows the roles)", err) // nothing deleted
		}
		if err := api.DeleteInstanceRole(ctx, workspace.DeleteInstanceRoleRequest{Instance: where.instance, Name: r.Name, ReassignOwnedTo: reassign}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Deleted the role %s of %s\n", r.Name, where)
		return nil
	}
	roles, err := api.ListRoles(ctx, workspace.ListRolesRequest{Branch: where.branch})
	if err != nil {
		return err
	}
	r, err := workspace.FindRole(roles, name, where.String())
	if err != nil {
		return fmt.Errorf("%w (lakebase role list shows the roles)", err) // nothing deleted
	}
	op, err := api.DeleteRole(ctx, workspace.DeleteRoleRequest{Name: r.Name, ReassignOwnedTo: reassign})
	if err != nil {
		return err
	}
	if _, err := op.Wait(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Deleted the role %s of %s\n", r.PostgresRole(), where)
	return nil
}

// passwordDSN is the connection string of a native password role on the database
// at: every value quoted by the grammar's own rules (lakebase.QuoteDSNValue), so a
// role name holding ';', quotes or spaces parses back to itself and nothing else.
// The TLS settings of the caller's connection string are kept.
func passwordDSN(cfg *lakebase.Config, at lakebase.Status, role, password string) string {
	q := lakebase.QuoteDSNValue
	parts := []string{"AuthScheme=Password", "Server=" + q(at.Host), "Port=" + strconv.Itoa(at.Port), "Database=" + q(at.Database),
		"User=" + q(role), "Password=" + q(password)}
	if cfg.SSLMode != "" && cfg.SSLMode != lakebase.SSLRequire {
		parts = append(parts, "SSLMode="+q(string(cfg.SSLMode)))
	}
	if cfg.SSLServerCert != "" {
		parts = append(parts, "SSLServerCert="+q(cfg.SSLServerCert))
	}
	return strings.Join(parts, ";")
}

// setRolePassword makes a password, and sets its SCRAM-SHA-256 secret on role
// through a session of the connection string's own identity on that database; it
// returns the password and where that database is.
func setRolePassword(ctx context.Context, cfg *lakebase.Config, where roleWhere, role string, stderr io.Writer) (string, lakebase.Status, error) {
	var at lakebase.Status
	raw := make([]byte, 24)
	rand.Read(raw)
	secret := base64.RawURLEncoding.EncodeToString(raw)
	verifier, err := scramSecret(secret)
	if err != nil {
		return "", at, err
	}
	c2 := *cfg
	if where.branch != "" {
		p := strings.Split(where.branch, "/")
		c2.Endpoint, c2.Project, c2.Branch = "", p[1], p[3]
	}
	c, err := connector(&c2, stderr)
	if err != nil {
		return "", at, err
	}
	defer c.Close()
	db := lakebase.OpenDB(c)
	defer db.Close()
	if _, err = db.ExecContext(ctx, fmt.Sprintf("ALTER ROLE %s WITH LOGIN PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), verifier)); err != nil {
		return "", at, err
	}
	if at, err = c.Status(ctx); err != nil { // the login just made: no new credential
		// The password is set: never lose it over where the database is.
		at = lakebase.Status{Host: cfg.Server, Port: cfg.Port, Database: cfg.Database}
		if at.Host == "" {
			at.Host = "<the host>"
		}
	}
	return secret, at, nil
}

// scramSecret is PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802,
// 4096 iterations, as PostgreSQL makes it).
func scramSecret(password string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	const iterations = 4096
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	server := mac(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(stored[:]), enc(server)), nil
}
