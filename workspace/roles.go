package workspace

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Postgres roles, through both APIs, shaped as the Databricks Go SDK sends them:
// Autoscaling (service/postgres: CreateRole, GetRole, ListRoles, DeleteRole) and
// Provisioned (service/database: CreateDatabaseInstanceRole and the rest).

// RoleIdentityType is the Databricks identity a role stands for.
type RoleIdentityType string

const (
	RoleIdentityUser             RoleIdentityType = "USER"
	RoleIdentityServicePrincipal RoleIdentityType = "SERVICE_PRINCIPAL"
	RoleIdentityGroup            RoleIdentityType = "GROUP"
	// RoleIdentityPgOnly is the Provisioned API's plain Postgres role (no
	// Databricks identity; a native password).
	RoleIdentityPgOnly RoleIdentityType = "PG_ONLY"
)

// RoleAuthMethod is how an Autoscaling role logs in.
type RoleAuthMethod string

const (
	RoleAuthOAuth    RoleAuthMethod = "LAKEBASE_OAUTH_V1"         // a database credential minted for the identity
	RoleAuthPassword RoleAuthMethod = "PG_PASSWORD_SCRAM_SHA_256" // a native Postgres password
	RoleAuthNoLogin  RoleAuthMethod = "NO_LOGIN"
)

// RoleMembership is a standard role a role can be a member of.
type RoleMembership string

// RoleMembershipSuperuser is databricks_superuser.
const RoleMembershipSuperuser RoleMembership = "DATABRICKS_SUPERUSER"

// RoleAttributes are the Postgres attributes the API can grant.
type RoleAttributes struct {
	Bypassrls  bool `json:"bypassrls,omitempty"`
	Createdb   bool `json:"createdb,omitempty"`
	Createrole bool `json:"createrole,omitempty"`
}

// RoleSpec is an Autoscaling role's desired state (and RoleStatus its state).
type RoleSpec struct {
	PostgresRole    string           `json:"postgres_role,omitempty"` // the identity: e-mail, application id or group name
	IdentityType    RoleIdentityType `json:"identity_type,omitempty"`
	AuthMethod      RoleAuthMethod   `json:"auth_method,omitempty"`
	MembershipRoles []RoleMembership `json:"membership_roles,omitempty"`
	Attributes      *RoleAttributes  `json:"attributes,omitempty"`
}

// RoleStatus is an Autoscaling role as it is.
type RoleStatus struct {
	RoleSpec
	RoleID string `json:"role_id,omitempty"`
}

// Role is an Autoscaling role: projects/<p>/branches/<b>/roles/<id>.
type Role struct {
	Name   string      `json:"name,omitempty"`
	Parent string      `json:"parent,omitempty"`
	RoleID string      `json:"role_id,omitempty"`
	Spec   *RoleSpec   `json:"spec,omitempty"`
	Status *RoleStatus `json:"status,omitempty"`
}

// PostgresRole is the role's name in Postgres (from its status, else its spec).
func (r Role) PostgresRole() string {
	if r.Status != nil && r.Status.PostgresRole != "" {
		return r.Status.PostgresRole
	}
	if r.Spec != nil {
		return r.Spec.PostgresRole
	}
	return ""
}

// roleID is the Autoscaling role id rule (RFC 1123, 4-63 characters).
var roleID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$`)

// RoleIDFor returns the role id to ask for an identity: the identity itself when it
// keeps the rule as it is (an application id), else "" for the service to choose
// (an e-mail, a name with capitals). A name is never lowered into an id: Postgres
// role names are case-sensitive, and "Robert" and "robert" are two roles that
// need two ids.
func RoleIDFor(identity string) string {
	if roleID.MatchString(identity) {
		return identity
	}
	return ""
}

// FindRole returns the role of roles (an Autoscaling branch's, as ListRoles gives
// them) whose Postgres name is exactly name: Postgres role names are
// case-sensitive, so "robert" never finds "Robert". It never guesses: when no
// role has exactly name it returns a *RoleMatchError matching ErrRoleNotFound
// (naming any roles that differ only in case), or ErrAmbiguousRole when several
// do; when the list holds more than one role of exactly that name, ErrAmbiguousRole
// naming them. where ("branch projects/p/branches/b") goes into the error.
func FindRole(roles []Role, name, where string) (Role, error) {
	i, err := matchRole(len(roles), func(i int) string { return roles[i].PostgresRole() },
		func(i int) string { return roles[i].Name }, name, where)
	if err != nil {
		return Role{}, err
	}
	return roles[i], nil
}

// FindInstanceRole is FindRole for a Provisioned instance's roles (as
// ListInstanceRoles gives them): the role whose name is exactly name.
func FindInstanceRole(roles []InstanceRole, name, where string) (InstanceRole, error) {
	i, err := matchRole(len(roles), func(i int) string { return roles[i].Name },
		func(i int) string { return "instance " + roles[i].InstanceName + " role " + roles[i].Name }, name, where)
	if err != nil {
		return InstanceRole{}, err
	}
	return roles[i], nil
}

// matchRole is the one rule of FindRole and FindInstanceRole: the index of the
// one role whose Postgres name (pgName) is exactly name.
func matchRole(n int, pgName, resource func(int) string, name, where string) (int, error) {
	if name == "" { // a role the service lists with no name is no one's
		return -1, &RoleMatchError{Name: name, Where: where}
	}
	var exact []int
	var folded []string
	for i := 0; i < n; i++ {
		switch r := pgName(i); {
		case r == name:
			exact = append(exact, i)
		case strings.EqualFold(r, name):
			folded = append(folded, r)
		}
	}
	switch {
	case len(exact) == 1:
		return exact[0], nil
	case len(exact) > 1:
		names := make([]string, len(exact))
		for j, i := range exact {
			names[j] = resource(i)
		}
		return -1, &RoleMatchError{Name: name, Where: where, Candidates: names, Ambiguous: true, SameName: true}
	}
	return -1, &RoleMatchError{Name: name, Where: where, Candidates: folded, Ambiguous: len(folded) > 1}
}

// CreateRoleRequest asks for a role on an Autoscaling branch.
type CreateRoleRequest struct {
	Branch string // projects/<p>/branches/<b>
	RoleID string // "": RoleIDFor(Spec.PostgresRole), or the service's choice
	Spec   RoleSpec
}

// CreateRole starts making a role (POST .../roles?role_id=..., the role as the
// body); the operation's Wait returns it.
//
// A create is not idempotent. Like any call it is retried after a transient
// failure, but when an attempt's answer was lost after the service may have
// carried it out (a timeout, a dropped connection, a 5xx) and a later attempt is
// answered ALREADY_EXISTS, the role of that name is read back: when it is the
// role asked for (exactly that Postgres name, the role id asked, the same
// identity type, login method, memberships and attributes), the create succeeded
// and the returned operation is done with it; otherwise the error is a
// *RoleExistsError (errors.Is ErrRoleExists) naming the differences, and the
// role is left as it is. An ALREADY_EXISTS with no answer lost before it is the
// service's error: the role was there before.
func (c *Client) CreateRole(ctx context.Context, req CreateRoleRequest) (*Operation[Role], error) {
	path, err := ResourcePath(req.Branch, "branches")
	if err != nil {
		return nil, err
	}
	if req.Spec.PostgresRole == "" {
		return nil, fmt.Errorf("%w: a role needs its Postgres role name (the identity)", ErrResourceName)
	}
	id := req.RoleID
	if id == "" {
		id = RoleIDFor(req.Spec.PostgresRole)
	} else if !roleID.MatchString(id) {
		return nil, fmt.Errorf("%w: role id %q breaks the service's rule (4-63 lowercase letters, digits and hyphens)", ErrResourceName, id)
	}
	path += "/roles"
	if id != "" {
		path += "?role_id=" + url.QueryEscape(id)
	}
	spec := req.Spec
	op := &Operation[Role]{c: c}
	var at attempts
	err = c.callTracked(ctx, "create role "+req.Spec.PostgresRole, http.MethodPost, path, Role{Spec: &spec}, &op.state, &at)
	if err != nil && at.unanswered && alreadyExists(err) {
		r, rerr := c.madeRole(ctx, req.Branch, id, spec)
		if rerr == errNoRole {
			// No role of the name: the lost attempt made none, and the 409 was about
			// something else (or the role is gone); the service's answer stands.
			return nil, err
		}
		if rerr != nil {
			return nil, rerr
		}
		return done(r), nil
	}
	if err != nil {
		return nil, err
	}
	return op, nil
}

// errNoRole is madeRole's and madeInstanceRole's answer when no role has the name.
var errNoRole = errors.New("no role of the name")

// madeRole reads back the role a create whose answer was lost may have made:
// the role of branch named exactly spec.PostgresRole, when it is the one asked
// for (id, when not "", is the role id asked); otherwise a *RoleExistsError.
func (c *Client) madeRole(ctx context.Context, branch, id string, spec RoleSpec) (Role, error) {
	where := "branch " + branch
	fail := func(diffs []string, err error) (Role, error) {
		return Role{}, &RoleExistsError{Name: spec.PostgresRole, Where: where, Differences: diffs, Err: err}
	}
	roles, err := c.ListRoles(ctx, ListRolesRequest{Branch: branch})
	if err != nil {
		return fail(nil, err)
	}
	r, err := FindRole(roles, spec.PostgresRole, where)
	if errors.Is(err, ErrRoleNotFound) {
		return Role{}, errNoRole
	}
	if err != nil {
		return fail(nil, err)
	}
	got := r.Status
	if got == nil && r.Spec != nil {
		got = &RoleStatus{RoleSpec: *r.Spec}
	}
	if got == nil {
		return fail([]string{"the service shows no state for it"}, nil)
	}
	var diffs differences
	differ := diffs.add
	if id != "" {
		have := r.RoleID
		if have == "" {
			have = got.RoleID
		}
		if have == "" {
			have = r.Name[strings.LastIndex(r.Name, "/")+1:]
		}
		differ("role_id", have, id)
	}
	differ("identity_type", identityOf(got.IdentityType), identityOf(spec.IdentityType))
	auth := spec.AuthMethod
	if auth == "" { // the service's default
		auth = RoleAuthOAuth
		if identityOf(spec.IdentityType) == "" {
			auth = RoleAuthPassword
		}
	}
	differ("auth_method", string(got.AuthMethod), string(auth))
	differ("membership_roles", memberships(got.MembershipRoles), memberships(spec.MembershipRoles))
	differ("attributes", attributes(got.Attributes), attributes(spec.Attributes))
	if len(diffs) > 0 {
		return fail(diffs, nil)
	}
	return r, nil
}

// differences are how a role read back differs from the one asked for.
type differences []string

// add notes what (a field) when the role has have and asked is another value.
func (d *differences) add(what, have, asked string) {
	if have == asked {
		return
	}
	if have == "" {
		have = "none"
	}
	if asked == "" {
		asked = "none"
	}
	*d = append(*d, what+" "+have+", asked "+asked)
}

// identityOf is an identity type with PG_ONLY (no identity) as "".
func identityOf(t RoleIdentityType) string {
	if t == RoleIdentityPgOnly {
		return ""
	}
	return string(t)
}

// memberships is a set of memberships as one sorted, comma-separated string.
func memberships(ms []RoleMembership) string {
	s := make([]string, 0, len(ms))
	for _, m := range ms {
		if m != "" && !slices.Contains(s, string(m)) {
			s = append(s, string(m))
		}
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// attributes are the attributes set, as one string ("" for none).
func attributes(a *RoleAttributes) string {
	if a == nil {
		return ""
	}
	var s []string
	if a.Bypassrls {
		s = append(s, "bypassrls")
	}
	if a.Createdb {
		s = append(s, "createdb")
	}
	if a.Createrole {
		s = append(s, "createrole")
	}
	return strings.Join(s, ",")
}

// ListRolesRequest names the branch whose roles to list.
type ListRolesRequest struct{ Branch string }

// ListRoles lists a branch's roles (every page).
func (c *Client) ListRoles(ctx context.Context, req ListRolesRequest) ([]Role, error) {
	path, err := ResourcePath(req.Branch, "branches")
	if err != nil {
		return nil, err
	}
	return list[Role](ctx, c, "list roles of "+req.Branch, path+"/roles", "roles")
}

// GetRoleRequest names a role (projects/<p>/branches/<b>/roles/<id>).
type GetRoleRequest struct{ Name string }

// GetRole looks up a role.
func (c *Client) GetRole(ctx context.Context, req GetRoleRequest) (Role, error) {
	var r Role
	path, err := ResourcePath(req.Name, "roles")
	if err != nil {
		return r, err
	}
	err = c.call(ctx, "look up role "+req.Name, http.MethodGet, path, nil, &r)
	return r, err
}

// DeleteRoleRequest names the role to delete; ReassignOwnedTo, when set, gets what
// it owns.
type DeleteRoleRequest struct {
	Name            string
	ReassignOwnedTo string
}

// DeleteRole starts deleting a role.
func (c *Client) DeleteRole(ctx context.Context, req DeleteRoleRequest) (*Operation[struct{}], error) {
	path, err := ResourcePath(req.Name, "roles")
	if err != nil {
		return nil, err
	}
	if req.ReassignOwnedTo != "" {
		path += "?reassign_owned_to=" + url.QueryEscape(req.ReassignOwnedTo)
	}
	op := &Operation[struct{}]{c: c}
	err = c.call(ctx, "delete role "+req.Name, http.MethodDelete, path, nil, &op.state)
	return op, err
}

// InstanceRole is a Provisioned instance's role.
type InstanceRole struct {
	Name                string           `json:"name"` // the Postgres role: e-mail, application id, group or plain name
	IdentityType        RoleIdentityType `json:"identity_type,omitempty"`
	MembershipRole      RoleMembership   `json:"membership_role,omitempty"`
	Attributes          *RoleAttributes  `json:"attributes,omitempty"`
	EffectiveAttributes *RoleAttributes  `json:"effective_attributes,omitempty"`
	InstanceName        string           `json:"instance_name,omitempty"`
}

// instanceRolesPath is /api/2.0/database/instances/<instance>/roles[/<role>].
func instanceRolesPath(instance, role string) (string, error) {
	if !ValidInstanceName(instance) {
		return "", fmt.Errorf("%w: instance name %q breaks the service's rule", ErrResourceName, instance)
	}
	p := "/api/2.0/database/instances/" + url.PathEscape(instance) + "/roles"
	if role != "" {
		// A dot segment would name the instance itself once a proxy on the way
		// normalises the path: DELETE .../roles/.. is DELETE .../instances/<name>.
		if strings.ContainsAny(role, "/?#") || strings.TrimSpace(role) != role || role == "." || role == ".." {
			return "", fmt.Errorf("%w: role name %q cannot be part of a path", ErrResourceName, role)
		}
		p += "/" + url.PathEscape(role)
	}
	return p, nil
}

// CreateInstanceRoleRequest asks for a role on a Provisioned instance.
type CreateInstanceRoleRequest struct {
	Instance string
	Role     InstanceRole
}

// CreateInstanceRole makes a role (POST .../roles, the role as the body). As
// with CreateRole, an ALREADY_EXISTS after an attempt whose answer was lost is
// checked against the role read back: the role asked for (exactly that name, the
// same identity type, membership and attributes) is returned as made; another is
// a *RoleExistsError (errors.Is ErrRoleExists), and it is left as it is.
func (c *Client) CreateInstanceRole(ctx context.Context, req CreateInstanceRoleRequest) (InstanceRole, error) {
	var out InstanceRole
	path, err := instanceRolesPath(req.Instance, "")
	if err != nil {
		return out, err
	}
	if req.Role.Name == "" {
		return out, fmt.Errorf("%w: a role needs its name", ErrResourceName)
	}
	var at attempts
	err = c.callTracked(ctx, "create role "+req.Role.Name, http.MethodPost, path, req.Role, &out, &at)
	if err != nil && at.unanswered && alreadyExists(err) {
		r, rerr := c.madeInstanceRole(ctx, req.Instance, req.Role)
		if rerr == errNoRole {
			return out, err // the service's answer stands, as for a branch's role
		}
		return r, rerr
	}
	return out, err
}

// madeInstanceRole reads back the role a create whose answer was lost may have
// made: the instance's role named exactly asked.Name, when it is the one asked
// for; otherwise a *RoleExistsError.
func (c *Client) madeInstanceRole(ctx context.Context, instance string, asked InstanceRole) (InstanceRole, error) {
	where := "instance " + instance
	fail := func(diffs []string, err error) (InstanceRole, error) {
		return InstanceRole{}, &RoleExistsError{Name: asked.Name, Where: where, Differences: diffs, Err: err}
	}
	roles, err := c.ListInstanceRoles(ctx, ListInstanceRolesRequest{Instance: instance})
	if err != nil {
		return fail(nil, err)
	}
	got, err := FindInstanceRole(roles, asked.Name, where)
	if errors.Is(err, ErrRoleNotFound) {
		return InstanceRole{}, errNoRole
	}
	if err != nil {
		return fail(nil, err)
	}
	var diffs differences
	differ := diffs.add
	differ("identity_type", identityOf(got.IdentityType), identityOf(asked.IdentityType))
	differ("membership_role", string(got.MembershipRole), string(asked.MembershipRole))
	attrs := got.Attributes
	if attrs == nil {
		attrs = got.EffectiveAttributes
	}
	differ("attributes", attributes(attrs), attributes(asked.Attributes))
	if len(diffs) > 0 {
		return fail(diffs, nil)
	}
	return got, nil
}

// ListInstanceRolesRequest names the instance whose roles to list.
type ListInstanceRolesRequest struct{ Instance string }

// ListInstanceRoles lists an instance's roles (every page).
func (c *Client) ListInstanceRoles(ctx context.Context, req ListInstanceRolesRequest) ([]InstanceRole, error) {
	path, err := instanceRolesPath(req.Instance, "")
	if err != nil {
		return nil, err
	}
	return list[InstanceRole](ctx, c, "list roles of "+req.Instance, path, "database_instance_roles")
}

// GetInstanceRoleRequest names a role of an instance.
type GetInstanceRoleRequest struct{ Instance, Name string }

// GetInstanceRole looks up a role of an instance.
func (c *Client) GetInstanceRole(ctx context.Context, req GetInstanceRoleRequest) (InstanceRole, error) {
	var out InstanceRole
	path, err := instanceRolesPath(req.Instance, req.Name)
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "look up role "+req.Name, http.MethodGet, path, nil, &out)
	return out, err
}

// DeleteInstanceRoleRequest names a role of an instance to delete.
type DeleteInstanceRoleRequest struct {
	Instance, Name  string
	AllowMissing    bool
	ReassignOwnedTo string
}

// DeleteInstanceRole deletes a role of an instance.
func (c *Client) DeleteInstanceRole(ctx context.Context, req DeleteInstanceRoleRequest) error {
	path, err := instanceRolesPath(req.Instance, req.Name)
	if err != nil {
		return err
	}
	q := url.Values{}
	if req.AllowMissing {
		q.Set("allow_missing", "true")
	}
	if req.ReassignOwnedTo != "" {
		q.Set("reassign_owned_to", req.ReassignOwnedTo)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.call(ctx, "delete role "+req.Name, http.MethodDelete, path, nil, nil)
}
