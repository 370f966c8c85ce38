package lakebasetest

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/internal/pgcluster"
	"github.com/lakebase-go/lakebase/workspace"
)

// The Autoscaling branches API: a branch is a copy of its parent's database at the
// moment it is made, with a read-write endpoint of its own. As on the service, a
// branch has its parent's roles and database names: the emulator starts a
// PostgreSQL of the branch's own, with the parent's roles (pg_dumpall
// --roles-only) and a database of the same name filled with pg_dump | pg_restore
// from the parent (which works while the parent has sessions). With an external
// server (pgcluster.EnvServer) a branch is a database of that server instead. The
// front door sends a session to the branch of the endpoint its credential was
// minted for (every endpoint of the emulator shares the loopback host).

// branch is a branch the emulator made (the main branch is not one).
type branch struct {
	name     string // projects/<p>/branches/<b>
	source   string
	database string             // the database of the branch: the parent's name on its own cluster
	pg       *pgcluster.Cluster // the branch's own PostgreSQL (nil: a database of the main one)
	endpoint string             // projects/<p>/branches/<b>/endpoints/<e>
	state    string             // INIT until the copy is done, then READY
	// protected branches refuse deletion (spec.is_protected, as the service's).
	protected  bool
	created    time.Time
	ready      time.Time // when its copy was done and it took connections
	firstLogin time.Time // its first login attempt (NewBranchLoginDelay counts from it)
	expires    time.Time // zero: never
	err        error
}

var resourceID = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// endpointName is the server's own endpoint, parsed (NewServer checks it).
func (s *Server) endpointName() workspace.EndpointName {
	e, _ := workspace.ParseEndpoint(s.Endpoint)
	return e
}

// mainBranch is the full name of the branch of the server's own endpoint.
func (s *Server) mainBranch() string { return s.endpointName().BranchName().String() }

// pathBranch is the branch named by a request's {p} and {b}.
func pathBranch(r *http.Request) workspace.BranchName {
	return workspace.BranchName{Project: r.PathValue("p"), ID: r.PathValue("b")}
}

// expireBranchesLocked drops branches past their expiry.
func (s *Server) expireBranchesLocked(now time.Time) {
	for name, b := range s.branchesMap {
		if !b.expires.IsZero() && now.After(b.expires) {
			delete(s.branchesMap, name)
			go s.dropBranchData(b)
		}
	}
}

// dropBranchData removes a deleted branch's data: its cluster, or its database.
func (s *Server) dropBranchData(b *branch) {
	s.mu.Lock()
	pg := b.pg
	s.mu.Unlock()
	if pg != nil {
		pg.Stop()
		if dir := s.branchDir(b); dir != "" {
			os.RemoveAll(dir) // its data in the data directory
		}
		return
	}
	s.dropDatabase(b.database)
}

// branchDir is where a branch's PostgreSQL keeps its data in the data directory
// (Options.DataDir), or "": <data dir>/branches/<branch id>. The id follows the
// service's rule (resourceID), checked when the branch was made and when the
// state was read back, so the path stays inside branches/.
func (s *Server) branchDir(b *branch) string {
	if s.data == nil {
		return ""
	}
	id := b.name[strings.LastIndex(b.name, "/")+1:]
	if !resourceID.MatchString(id) {
		return ""
	}
	return filepath.Join(s.data.file("branches"), id)
}

// startBranchCluster starts a branch's PostgreSQL: in the data directory (new:
// whatever a deleted branch of the same id left there is removed first), or
// throwaway.
func (s *Server) startBranchCluster(ctx context.Context, b *branch, fresh bool) (*pgcluster.Cluster, error) {
	dir := s.branchDir(b)
	if dir == "" {
		return pgcluster.Start(ctx)
	}
	if fresh {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	return pgcluster.StartIn(ctx, dir)
}

// copyBranch fills b with a copy of the database src of cluster from (nil: the
// main cluster): a cluster of its own when the emulator runs its own PostgreSQL.
func (s *Server) copyBranch(from *pgcluster.Cluster, src string, b *branch) error {
	if from == nil {
		from = s.pg
	}
	if !s.ownPG || !s.pg.Own() {
		return s.copyDatabaseBetween(s.pg, src, s.pg, b.database)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := s.startBranchCluster(ctx, b, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	b.pg = pg
	gone := s.branchesMap[b.name] != b // deleted while its cluster started
	s.mu.Unlock()
	if gone {
		pg.Stop()
		return errors.New("the branch was deleted while it was being made")
	}
	if err := pg.CopyRolesFrom(ctx, from); err != nil {
		return err
	}
	return s.copyDatabaseBetween(from, src, pg, b.database)
}

func (s *Server) dropDatabase(db string) {
	if s.pg == nil || db == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.pg.Exec(ctx, "", "DROP DATABASE IF EXISTS "+pgcluster.QuoteIdent(db)+" WITH (FORCE)")
}

// copyDatabaseBetween makes database dst of cluster to a copy of database src of
// cluster from.
func (s *Server) copyDatabaseBetween(from *pgcluster.Cluster, src string, to *pgcluster.Cluster, dst string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if dst != "postgres" {
		if err := to.Exec(ctx, "", "CREATE DATABASE "+pgcluster.QuoteIdent(dst)); err != nil {
			return err
		}
	}
	dump := exec.CommandContext(ctx, pgcluster.Tool("pg_dump"), "-Fc", "-d", from.AdminConnString(src))
	restore := exec.CommandContext(ctx, pgcluster.Tool("pg_restore"), "-d", to.AdminConnString(dst))
	return pgcluster.Pipe(dump, restore)
}

func (s *Server) branchJSONOf(b *branch) map[string]any {
	out := branchJSON(b.name, false)
	out["create_time"] = b.created.UTC().Format(time.RFC3339Nano)
	st := out["status"].(map[string]any)
	st["current_state"] = b.state
	st["source_branch"] = b.source
	out["effective_source_branch"] = b.source
	if !b.expires.IsZero() {
		out["expire_time"] = b.expires.UTC().Format(time.RFC3339Nano)
		st["expire_time"] = out["expire_time"]
	}
	st["is_protected"] = b.protected
	out["spec"] = map[string]any{"is_protected": b.protected, "source_branch": b.source}
	return out
}

func (s *Server) branchEndpointJSON(b *branch) map[string]any {
	ep := s.endpointJSON()
	ep["name"] = b.endpoint
	ep["uid"] = "ep-" + strings.ReplaceAll(strings.TrimPrefix(b.name, "projects/"), "/branches/", "-")
	ep["parent"] = b.name
	return ep
}

// lro is a long-running operation. As on the service, operations live on their own:
// the operation of a deletion is still there (done) after its branch is gone.
type lro struct {
	name     string
	done     bool
	response map[string]any
	errMsg   string
	branch   *branch // a creation in progress: done once the branch is READY or FAILED
}

// newOperationLocked records a long-running operation of resource (a branch path).
func (s *Server) newOperationLocked(resource string, done bool, response map[string]any, b *branch) *lro {
	op := &lro{name: resource + "/operations/" + randHex(8), done: done, response: response, branch: b}
	s.operations[op.name] = op
	return op
}

// operationJSONLocked is op as the service answers it, brought up to date.
func (s *Server) operationJSONLocked(op *lro) map[string]any {
	if !op.done && op.branch != nil && op.branch.state != "INIT" {
		op.done = true
		if op.branch.err != nil {
			op.errMsg = "the branch could not be made: " + firstLineOf(op.branch.err.Error())
		} else {
			op.response = s.branchJSONOf(op.branch)
		}
	}
	out := map[string]any{"name": op.name, "done": op.done}
	if op.done && op.response != nil {
		out["response"] = op.response
	}
	if op.errMsg != "" {
		out["error"] = map[string]any{"code": 13, "message": op.errMsg}
	}
	return out
}

// handleCreateBranch: POST /api/2.0/postgres/projects/{p}/branches?branch_id=<id>.
func (s *Server) handleCreateBranch(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPBranches, w, r); !ok {
		return
	}
	project := workspace.ProjectName{ID: r.PathValue("p")}.String()
	if project != s.endpointName().BranchName().ProjectName().String() {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "project "+project+" does not exist")
		return
	}
	id := r.URL.Query().Get("branch_id")
	if !resourceID.MatchString(id) {
		writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "branch_id must be 1-63 characters of lowercase letters, digits and hyphens, starting with a letter")
		return
	}
	var body struct {
		Spec struct {
			SourceBranch string `json:"source_branch"`
			TTL          string `json:"ttl"`
			ExpireTime   string `json:"expire_time"`
			IsProtected  bool   `json:"is_protected"`
		} `json:"spec"`
		SourceBranch string `json:"source_branch"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	source := body.Spec.SourceBranch
	if source == "" {
		source = body.SourceBranch
	}
	if source == "" {
		source = s.mainBranch()
	}
	bn := workspace.BranchName{Project: r.PathValue("p"), ID: id}
	name := bn.String()
	b := &branch{name: name, source: source, endpoint: bn.Endpoint("primary").String(), state: "INIT", created: time.Now(),
		database: s.Database, protected: body.Spec.IsProtected}
	if !s.ownPG || s.pg == nil || !s.pg.Own() {
		b.database = s.Database + "__" + strings.ReplaceAll(id, "-", "_") // one server: a database per branch
	}
	if body.Spec.TTL != "" {
		d, err := time.ParseDuration(body.Spec.TTL)
		if err != nil || d <= 0 {
			writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "ttl must be a duration in seconds, e.g. \"3600s\"")
			return
		}
		b.expires = b.created.Add(d)
	} else if body.Spec.ExpireTime != "" {
		t, err := time.Parse(time.RFC3339Nano, body.Spec.ExpireTime)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "expire_time must be an RFC 3339 time")
			return
		}
		b.expires = t
	}
	s.mu.Lock()
	s.expireBranchesLocked(time.Now())
	srcDB := ""
	var srcPG *pgcluster.Cluster
	if source == s.mainBranch() {
		srcDB = s.Database
	} else if pb := s.branchesMap[source]; pb != nil && pb.state == "READY" {
		srcDB, srcPG = pb.database, pb.pg
	}
	_, exists := s.branchesMap[name]
	if _, kept := s.unstarted[name]; kept {
		exists = true // its data is in the data directory, for the next start
	}
	if srcDB == "" || exists || name == s.mainBranch() {
		s.mu.Unlock()
		if exists || name == s.mainBranch() {
			writeAPIError(w, http.StatusConflict, "ALREADY_EXISTS", "branch "+name+" already exists")
		} else {
			writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "source branch "+source+" does not exist")
		}
		return
	}
	s.branchesMap[name] = b
	op := s.operationJSONLocked(s.newOperationLocked(name, false, nil, b))
	s.mu.Unlock()
	go func() {
		err := s.copyBranch(srcPG, srcDB, b)
		s.mu.Lock()
		if err != nil {
			b.state, b.err = "FAILED", err
		} else {
			b.state, b.ready = "READY", time.Now()
		}
		s.mu.Unlock()
		s.logf("branches: %s from %s: %v", name, source, err)
	}()
	writeJSON(w, http.StatusOK, op)
}

// handleGetOperation: GET /api/2.0/postgres/projects/{p}/branches/{b}/operations/{op},
// looked up in the operations table (the branch may be gone).
func (s *Server) handleGetOperation(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPBranches, w, r); !ok {
		return
	}
	name := pathBranch(r).String() + "/operations/" + r.PathValue("op")
	s.mu.Lock()
	op := s.operations[name]
	var out map[string]any
	if op != nil {
		out = s.operationJSONLocked(op)
	}
	s.mu.Unlock()
	if op == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "operation "+name+" does not exist")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) branchOf(w http.ResponseWriter, r *http.Request) *branch {
	name := pathBranch(r).String()
	s.mu.Lock()
	s.expireBranchesLocked(time.Now())
	b := s.branchesMap[name]
	s.mu.Unlock()
	if b == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "branch "+name+" does not exist")
	}
	return b
}

// handleGetBranch: GET /api/2.0/postgres/projects/{p}/branches/{b}.
func (s *Server) handleGetBranch(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPBranches, w, r); !ok {
		return
	}
	if pathBranch(r).String() == s.mainBranch() {
		writeJSON(w, http.StatusOK, branchJSON(s.mainBranch(), true))
		return
	}
	if b := s.branchOf(w, r); b != nil {
		s.mu.Lock()
		out := s.branchJSONOf(b)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	}
}

// handleDeleteBranch: DELETE /api/2.0/postgres/projects/{p}/branches/{b}.
func (s *Server) handleDeleteBranch(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPBranches, w, r); !ok {
		return
	}
	if pathBranch(r).String() == s.mainBranch() {
		writeAPIError(w, http.StatusBadRequest, "FAILED_PRECONDITION", "the default branch of a project cannot be deleted")
		return
	}
	b := s.branchOf(w, r)
	if b == nil {
		return
	}
	s.mu.Lock()
	if b.protected {
		s.mu.Unlock()
		writeAPIError(w, http.StatusBadRequest, "FAILED_PRECONDITION", "branch "+b.name+" is protected; unprotect it before deleting it")
		return
	}
	delete(s.branchesMap, b.name)
	op := s.operationJSONLocked(s.newOperationLocked(b.name, true, map[string]any{}, nil))
	s.mu.Unlock()
	s.dropBranchData(b)
	writeJSON(w, http.StatusOK, op)
}

// handleCreateEndpoint: POST /api/2.0/postgres/projects/{p}/branches/{b}/endpoints.
// A branch the emulator makes has its read-write endpoint already: creating it
// again is a conflict, as on the service.
func (s *Server) handleCreateEndpoint(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.api(EPBranches, w, r); !ok {
		return
	}
	if b := s.branchOf(w, r); b != nil {
		writeAPIError(w, http.StatusConflict, "ALREADY_EXISTS", "branch "+b.name+" already has a read-write endpoint")
	}
}

// branchDatabase returns the physical database of the branch of endpoint, or "".
func (s *Server) branchDatabase(endpoint string) string {
	if endpoint == "" || endpoint == s.Endpoint {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.branchesMap {
		if b.endpoint == endpoint && b.state == "READY" {
			return b.database
		}
	}
	return ""
}

// clusterOf returns the PostgreSQL that serves endpoint: a branch's own, or the
// main one.
func (s *Server) clusterOf(endpoint string) *pgcluster.Cluster {
	if endpoint != "" && endpoint != s.Endpoint {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, b := range s.branchesMap {
			if b.endpoint == endpoint && b.state == "READY" && b.pg != nil {
				return b.pg
			}
		}
	}
	return s.pg
}

// clusters returns every PostgreSQL of the emulator: the main one and the branches'.
func (s *Server) clusters() []*pgcluster.Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*pgcluster.Cluster{s.pg}
	for _, b := range s.branchesMap {
		if b.pg != nil {
			out = append(out, b.pg)
		}
	}
	return out
}

// branchTooNew reports whether the branch of endpoint was made less than
// NewBranchLoginDelay ago.
func (s *Server) branchTooNew(endpoint string) bool {
	if s.opts.NewBranchLoginDelay <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.branchesMap {
		if b.endpoint == endpoint {
			// The window opens at the branch's first login, so how long a client took
			// to learn that the branch is ready (its polling) does not matter.
			if b.firstLogin.IsZero() {
				b.firstLogin = time.Now()
			}
			return b.state != "READY" || time.Since(b.firstLogin) < s.opts.NewBranchLoginDelay
		}
	}
	return false
}

// Branches returns the names of the branches made through the API.
func (s *Server) Branches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireBranchesLocked(time.Now())
	var out []string
	for n := range s.branchesMap {
		out = append(out, n)
	}
	return out
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
