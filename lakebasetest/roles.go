package lakebasetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/pgcluster"
)

// The roles APIs, shaped as the Databricks Go SDK drives them: Autoscaling
// (POST /api/2.0/postgres/{branch}/roles?role_id=..., the Role as the body, a
// long-running operation; GET the list, every page; GET and DELETE
// /api/2.0/postgres/{role name}) and Provisioned (/api/2.0/database/instances/{name}/roles,
// the DatabaseInstanceRole as the body). A role made through them is a role in
// PostgreSQL on that branch: an OAuth role is a LOGIN role whose credentials the
// front door takes, a password role has a password PostgreSQL checks (SCRAM) and
// nobody is told, a NO_LOGIN role cannot log in. Lists read PostgreSQL itself, so
// roles made with SQL show too.

// systemRoles are PostgreSQL's and the service's own, never listed.
var systemRoles = map[string]bool{"postgres": true, "databricks_superuser": true}

var roleIDRule = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$`)

// roleIDOf is the role id of a Postgres role: the one it was made with, else the
// name when it keeps the rule as it is (an application id), else one derived from
// the exact name. Names are never lowered into ids: "Robert" and "robert" are two
// roles with two ids, as the service gives them.
func (s *Server) roleIDOf(branch, role string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := s.roleIDs[branch+"|"+role]; id != "" {
		return id
	}
	if roleIDRule.MatchString(role) && !s.roleIDTakenLocked(branch, role, role) {
		return role
	}
	sum := sha256.Sum256([]byte(role))
	return "r-" + hex.EncodeToString(sum[:6])
}

// roleIDTakenLocked reports whether a role of branch other than role was made with
// the id id.
func (s *Server) roleIDTakenLocked(branch, id, role string) bool {
	for k, v := range s.roleIDs {
		if v == id && k != branch+"|"+role && strings.HasPrefix(k, branch+"|") {
			return true
		}
	}
	return false
}

// branchCluster is the cluster and database of an Autoscaling branch.
func (s *Server) branchCluster(branch string) (*pgcluster.Cluster, string, bool) {
	if branch == s.mainBranch() {
		return s.pg, s.Database, s.pg != nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.branchesMap[branch]; b != nil && b.state == "READY" && b.pg != nil {
		return b.pg, b.database, true
	}
	return nil, "", false
}

// pgRole is a role as PostgreSQL has it.
type pgRole struct {
	name                            string
	login, password                 bool
	createdb, createrole, bypassrls bool
	superuser                       bool // member of databricks_superuser
}

func listPGRoles(ctx context.Context, pg *pgcluster.Cluster, role string) ([]pgRole, error) {
	pc, err := pgconn.Connect(ctx, pg.AdminConnString("postgres"))
	if err != nil {
		return nil, err
	}
	defer pc.Close(context.Background())
	q := `SELECT a.rolname, a.rolcanlogin, a.rolpassword IS NOT NULL, a.rolcreatedb, a.rolcreaterole, a.rolbypassrls,
		EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid AND g.rolname = 'databricks_superuser')
		FROM pg_authid a WHERE a.rolname NOT LIKE 'pg\_%' AND ($1 = '' OR a.rolname = $1) ORDER BY a.rolname`
	res := pc.ExecParams(ctx, q, [][]byte{[]byte(role)}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	var out []pgRole
	for _, r := range res.Rows {
		name := string(r[0])
		if systemRoles[name] {
			continue
		}
		b := func(i int) bool { return string(r[i]) == "t" }
		out = append(out, pgRole{name: name, login: b(1), password: b(2), createdb: b(3), createrole: b(4), bypassrls: b(5), superuser: b(6)})
	}
	return out, nil
}

// identityTypeOf is the Databricks identity a role name stands for ("" for none).
func (s *Server) identityTypeOf(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.roleTypes[name]; t != "" {
		return t
	}
	if secret, ok := s.clients[name]; ok && secret != "" {
		return "SERVICE_PRINCIPAL"
	}
	if s.users[name] {
		return "USER"
	}
	return ""
}

func (s *Server) roleJSON(branch string, r pgRole) map[string]any {
	typ := s.identityTypeOf(r.name)
	auth := "LAKEBASE_OAUTH_V1"
	switch {
	case !r.login:
		auth = "NO_LOGIN"
	case r.password || typ == "":
		auth = "PG_PASSWORD_SCRAM_SHA_256"
	}
	status := map[string]any{"postgres_role": r.name, "auth_method": auth, "role_id": s.roleIDOf(branch, r.name)}
	if typ != "" {
		status["identity_type"] = typ
	}
	if r.superuser {
		status["membership_roles"] = []string{"DATABRICKS_SUPERUSER"}
	}
	if attrs := attrsJSON(r); attrs != nil {
		status["attributes"] = attrs
	}
	id := s.roleIDOf(branch, r.name)
	return map[string]any{"name": branch + "/roles/" + id, "parent": branch, "role_id": id, "status": status}
}

func attrsJSON(r pgRole) map[string]any {
	attrs := map[string]any{}
	if r.createdb {
		attrs["createdb"] = true
	}
	if r.createrole {
		attrs["createrole"] = true
	}
	if r.bypassrls {
		attrs["bypassrls"] = true
	}
	if len(attrs) == 0 {
		return nil
	}
	return attrs
}

type roleSpecBody struct {
	PostgresRole    string     `json:"postgres_role"`
	IdentityType    string     `json:"identity_type"`
	AuthMethod      string     `json:"auth_method"`
	MembershipRoles []string   `json:"membership_roles"`
	Attributes      *roleAttrs `json:"attributes"`
}

// roleAttrs are the role attributes both roles APIs take.
type roleAttrs struct {
	Bypassrls  bool `json:"bypassrls"`
	Createdb   bool `json:"createdb"`
	Createrole bool `json:"createrole"`
}

// makeRole creates role in pg as the roles APIs do; it returns an API error code and
// message, or "".
func (s *Server) makeRole(ctx context.Context, pg *pgcluster.Cluster, db string, spec roleSpecBody) (int, string, string) {
	name := spec.PostgresRole
	switch spec.IdentityType {
	case "USER":
		s.mu.Lock()
		ok := s.users[name]
		s.mu.Unlock()
		if !ok {
			return http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("User %s does not exist in this workspace.", name)
		}
	case "SERVICE_PRINCIPAL":
		s.mu.Lock()
		secret, ok := s.clients[name]
		s.mu.Unlock()
		if !ok || secret == "" {
			return http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Service principal with application id %s does not exist in this workspace.", name)
		}
	case "GROUP", "", "PG_ONLY":
	default:
		return http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("identity_type %q is not one of USER, SERVICE_PRINCIPAL, GROUP", spec.IdentityType)
	}
	auth := spec.AuthMethod
	if auth == "" {
		auth = "LAKEBASE_OAUTH_V1"
		if spec.IdentityType == "" || spec.IdentityType == "PG_ONLY" {
			auth = "PG_PASSWORD_SCRAM_SHA_256"
		}
	}
	if existing, err := listPGRoles(ctx, pg, name); err != nil {
		return http.StatusInternalServerError, "INTERNAL_ERROR", err.Error()
	} else if len(existing) > 0 {
		return http.StatusConflict, "ALREADY_EXISTS", fmt.Sprintf("Role %s already exists.", name)
	}
	var err error
	switch auth {
	case "LAKEBASE_OAUTH_V1":
		err = pg.CreateRole(ctx, name, "", db)
	case "PG_PASSWORD_SCRAM_SHA_256":
		// The service makes a password and tells nobody; the owner sets one to use.
		err = pg.CreateRole(ctx, name, randHex(24), db)
		if err == nil {
			s.mu.Lock()
			s.pgPasswords[name] = true
			s.mu.Unlock()
		}
	case "NO_LOGIN":
		err = pg.Exec(ctx, "", "CREATE ROLE "+pgcluster.QuoteIdent(name)+" NOLOGIN")
	default:
		return http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("auth_method %q is not one of LAKEBASE_OAUTH_V1, PG_PASSWORD_SCRAM_SHA_256, NO_LOGIN", auth)
	}
	if err == nil && spec.Attributes != nil {
		var attrs []string
		if spec.Attributes.Createdb {
			attrs = append(attrs, "CREATEDB")
		}
		if spec.Attributes.Createrole {
			attrs = append(attrs, "CREATEROLE")
		}
		if spec.Attributes.Bypassrls {
			attrs = append(attrs, "BYPASSRLS")
		}
		if len(attrs) > 0 {
			err = pg.Exec(ctx, "", "ALTER ROLE "+pgcluster.QuoteIdent(name)+" "+strings.Join(attrs, " "))
		}
	}
	for _, m := range spec.MembershipRoles {
		if err != nil {
			break
		}
		if m != "DATABRICKS_SUPERUSER" {
			return http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("membership role %q is not DATABRICKS_SUPERUSER", m)
		}
		err = pg.Exec(ctx, "", "GRANT databricks_superuser TO "+pgcluster.QuoteIdent(name))
	}
	if err != nil {
		return http.StatusInternalServerError, "INTERNAL_ERROR", "creating the role: " + firstLineOf(err.Error())
	}
	s.mu.Lock()
	if spec.IdentityType != "" && spec.IdentityType != "PG_ONLY" {
		s.roleTypes[name] = spec.IdentityType
	}
	if pg == s.pg {
		s.roles[name] = true
	}
	s.mu.Unlock()
	return 0, "", ""
}

// dropPGRole drops role from pg, giving what it owns to reassign (or postgres).
func (s *Server) dropPGRole(ctx context.Context, pg *pgcluster.Cluster, db, role, reassign string) error {
	if reassign == "" {
		reassign = "postgres"
	}
	q := fmt.Sprintf("REASSIGN OWNED BY %s TO %s; DROP OWNED BY %s", pgcluster.QuoteIdent(role), pgcluster.QuoteIdent(reassign), pgcluster.QuoteIdent(role))
	if err := pg.Exec(ctx, db, q); err != nil {
		return err
	}
	if err := pg.Exec(ctx, "", "DROP ROLE "+pgcluster.QuoteIdent(role)); err != nil {
		return err
	}
	pg.ForgetRole(role)
	s.mu.Lock()
	if pg == s.pg {
		delete(s.roles, role)
		delete(s.passwords, role)
		delete(s.pgPasswords, role)
	}
	s.mu.Unlock()
	return nil
}

func (s *Server) handleCreateRole(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPRoles, w, r); !ok {
		return
	}
	branch := pathBranch(r).String()
	var body struct {
		Spec *roleSpecBody `json:"spec"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Spec == nil || body.Spec.PostgresRole == "" {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "Field 'spec.postgres_role' is required.")
		return
	}
	if hasControl(body.Spec.PostgresRole) {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "Field 'spec.postgres_role' must not hold control characters.")
		return
	}
	id := r.URL.Query().Get("role_id")
	if id != "" && !roleIDRule.MatchString(id) {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("role_id %q must be 4-63 characters of lowercase letters, digits and hyphens (RFC 1123).", id))
		return
	}
	pg, db, ok := s.branchCluster(branch)
	if !ok {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Branch %s does not exist.", branch))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if id != "" {
		existing, err := listPGRoles(ctx, pg, "")
		if err != nil {
			writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
			return
		}
		for _, e := range existing {
			if e.name != body.Spec.PostgresRole && s.roleIDOf(branch, e.name) == id {
				writeAPIError(w, http.StatusConflict, "ALREADY_EXISTS", fmt.Sprintf("Role %s/roles/%s already exists.", branch, id))
				return
			}
		}
	}
	if status, code, msg := s.makeRole(ctx, pg, db, *body.Spec); status != 0 {
		writeAPIError(w, status, code, msg)
		return
	}
	if id != "" {
		s.mu.Lock()
		s.roleIDs[branch+"|"+body.Spec.PostgresRole] = id
		s.mu.Unlock()
	}
	roles, err := listPGRoles(ctx, pg, body.Spec.PostgresRole)
	if err != nil || len(roles) == 0 {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "the role was made but cannot be read back")
		return
	}
	out := s.roleJSON(branch, roles[0])
	out["spec"] = body.Spec
	s.writeDoneOperation(w, branch, out)
}

func (s *Server) handleListRoles(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPRoles, w, r); !ok {
		return
	}
	branch := pathBranch(r).String()
	pg, _, ok := s.branchCluster(branch)
	if !ok {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Branch %s does not exist.", branch))
		return
	}
	roles, err := listPGRoles(r.Context(), pg, "")
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	var all []any
	for _, role := range roles {
		all = append(all, s.roleJSON(branch, role))
	}
	s.writePage(w, r, "roles", all)
}

// roleByID finds the role of branch whose id is id.
func (s *Server) roleByID(ctx context.Context, branch, id string) (*pgcluster.Cluster, string, *pgRole, error) {
	pg, db, ok := s.branchCluster(branch)
	if !ok {
		return nil, "", nil, nil
	}
	roles, err := listPGRoles(ctx, pg, "")
	if err != nil {
		return nil, "", nil, err
	}
	for i := range roles {
		if s.roleIDOf(branch, roles[i].name) == id {
			return pg, db, &roles[i], nil
		}
	}
	return pg, db, nil, nil
}

func (s *Server) handleGetRole(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPRoles, w, r); !ok {
		return
	}
	branch := pathBranch(r).String()
	_, _, role, err := s.roleByID(r.Context(), branch, r.PathValue("r"))
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	if role == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Role %s/roles/%s does not exist.", branch, r.PathValue("r")))
		return
	}
	writeJSON(w, http.StatusOK, s.roleJSON(branch, *role))
}

func (s *Server) handleDeleteRole(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPRoles, w, r); !ok {
		return
	}
	branch := pathBranch(r).String()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	pg, db, role, err := s.roleByID(ctx, branch, r.PathValue("r"))
	if err == nil && role != nil {
		err = s.dropPGRole(ctx, pg, db, role.name, r.URL.Query().Get("reassign_owned_to"))
		if err == nil {
			s.mu.Lock()
			delete(s.roleIDs, branch+"|"+role.name)
			s.mu.Unlock()
		}
	}
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "dropping the role: "+firstLineOf(err.Error()))
		return
	}
	if role == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Role %s/roles/%s does not exist.", branch, r.PathValue("r")))
		return
	}
	s.writeDoneOperation(w, branch, map[string]any{})
}

// writeDoneOperation answers a long-running operation of resource that is done
// already, with response as its result.
func (s *Server) writeDoneOperation(w http.ResponseWriter, resource string, response map[string]any) {
	s.mu.Lock()
	op := s.newOperationLocked(resource, true, response, nil)
	js := s.operationJSONLocked(op)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, js)
}

// writePage answers one page of all under key, with next_page_token.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, key string, all []any) {
	items, next := s.page(r, all)
	out := map[string]any{key: items}
	if next != "" {
		out["next_page_token"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

// --- Provisioned ---

func (s *Server) instanceRoleJSON(r pgRole) map[string]any {
	typ := s.identityTypeOf(r.name)
	if typ == "" {
		typ = "PG_ONLY"
	}
	out := map[string]any{"name": r.name, "identity_type": typ, "instance_name": s.Instance}
	if r.superuser {
		out["membership_role"] = "DATABRICKS_SUPERUSER"
	}
	if a := attrsJSON(r); a != nil {
		out["effective_attributes"] = a
	}
	return out
}

func (s *Server) instanceRoleGate(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := s.api(EPRoles, w, r); !ok {
		return false
	}
	if name := r.PathValue("name"); name != s.Instance || s.opts.NoProvisioned || s.pg == nil {
		writeAPIError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Database instance '%s' does not exist.", name))
		return false
	}
	return true
}

func (s *Server) handleCreateInstanceRole(w http.ResponseWriter, r *http.Request) {
	if !s.instanceRoleGate(w, r) {
		return
	}
	var body struct {
		Name           string     `json:"name"`
		IdentityType   string     `json:"identity_type"`
		MembershipRole string     `json:"membership_role"`
		Attributes     *roleAttrs `json:"attributes"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Name == "" {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "Field 'name' is required.")
		return
	}
	if hasControl(body.Name) {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "Field 'name' must not hold control characters.")
		return
	}
	spec := roleSpecBody{PostgresRole: body.Name, IdentityType: body.IdentityType, Attributes: body.Attributes}
	if body.MembershipRole != "" {
		spec.MembershipRoles = []string{body.MembershipRole}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if status, code, msg := s.makeRole(ctx, s.pg, s.Database, spec); status != 0 {
		writeAPIError(w, status, code, msg)
		return
	}
	roles, err := listPGRoles(ctx, s.pg, body.Name)
	if err != nil || len(roles) == 0 {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "the role was made but cannot be read back")
		return
	}
	writeJSON(w, http.StatusOK, s.instanceRoleJSON(roles[0]))
}

func (s *Server) handleListInstanceRoles(w http.ResponseWriter, r *http.Request) {
	if !s.instanceRoleGate(w, r) {
		return
	}
	roles, err := listPGRoles(r.Context(), s.pg, "")
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i].name < roles[j].name })
	var all []any
	for _, role := range roles {
		all = append(all, s.instanceRoleJSON(role))
	}
	s.writePage(w, r, "database_instance_roles", all)
}

func (s *Server) handleGetInstanceRole(w http.ResponseWriter, r *http.Request) {
	if !s.instanceRoleGate(w, r) {
		return
	}
	roles, err := listPGRoles(r.Context(), s.pg, r.PathValue("role"))
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	if len(roles) == 0 {
		writeAPIError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Role '%s' does not exist.", r.PathValue("role")))
		return
	}
	writeJSON(w, http.StatusOK, s.instanceRoleJSON(roles[0]))
}

func (s *Server) handleDeleteInstanceRole(w http.ResponseWriter, r *http.Request) {
	if !s.instanceRoleGate(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	name := r.PathValue("role")
	roles, err := listPGRoles(ctx, s.pg, name)
	if err == nil && len(roles) > 0 {
		err = s.dropPGRole(ctx, s.pg, s.Database, name, r.URL.Query().Get("reassign_owned_to"))
	}
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL_ERROR", "dropping the role: "+firstLineOf(err.Error()))
		return
	}
	if len(roles) == 0 && r.URL.Query().Get("allow_missing") != "true" {
		writeAPIError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Role '%s' does not exist.", name))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// hasControl reports whether a role name holds a control character (a line
// break, NUL): the emulator refuses such names rather than write them into its
// server's configuration.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
