package workspace

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
)

// CredentialRequest asks for a database credential of an Autoscaling endpoint
// (POST /api/2.0/postgres/credentials).
type CredentialRequest struct {
	Endpoint string        // projects/<p>/branches/<b>/endpoints/<e>
	TTL      time.Duration // clamped to 300s..3600s; 0 is 3600s
	Claims   *CredentialClaims
}

// GenerateCredential mints a database credential for an Autoscaling endpoint.
func (c *Client) GenerateCredential(ctx context.Context, req CredentialRequest) (DatabaseCredential, error) {
	if _, err := ResourcePath(req.Endpoint, "endpoints"); err != nil {
		return DatabaseCredential{}, err
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	ttl = min(max(ttl, 300*time.Second), time.Hour)
	var out struct {
		Token      string `json:"token"`
		ExpireTime Time   `json:"expire_time"`
	}
	in := map[string]any{"endpoint": req.Endpoint, "ttl": fmt.Sprintf("%ds", int(ttl/time.Second))}
	if req.Claims != nil {
		in["claims"] = req.Claims.body()
	}
	const op = "mint Autoscaling credential"
	if err := c.call(ctx, op, http.MethodPost, "/api/2.0/postgres/credentials", in, &out); err != nil {
		return DatabaseCredential{}, err
	}
	if out.Token == "" {
		return DatabaseCredential{}, &APIError{Op: op, StatusCode: 200, Err: fmt.Errorf("the answer has no token")}
	}
	return DatabaseCredential{Token: out.Token, Expiry: out.ExpireTime.OrDefault(time.Now())}, nil
}

// ProvisionedCredentialRequest asks for a database credential of Provisioned
// instances (POST /api/2.0/database/credentials); each request carries a fresh
// request_id.
type ProvisionedCredentialRequest struct {
	Instances []string
	Claims    *CredentialClaims
}

// GenerateProvisionedCredential mints a database credential for Provisioned
// instances.
func (c *Client) GenerateProvisionedCredential(ctx context.Context, req ProvisionedCredentialRequest) (DatabaseCredential, error) {
	if len(req.Instances) == 0 {
		return DatabaseCredential{}, fmt.Errorf("%w: no instance named", ErrResourceName)
	}
	for _, n := range req.Instances {
		if !instanceName.MatchString(n) {
			return DatabaseCredential{}, fmt.Errorf("%w: instance name %q (letters, digits and hyphens)", ErrResourceName, n)
		}
	}
	var out struct {
		Token          string `json:"token"`
		ExpirationTime Time   `json:"expiration_time"`
	}
	in := map[string]any{"request_id": uuid.NewString(), "instance_names": req.Instances}
	if req.Claims != nil {
		in["claims"] = req.Claims.body()
	}
	const op = "mint Provisioned credential"
	if err := c.call(ctx, op, http.MethodPost, "/api/2.0/database/credentials", in, &out); err != nil {
		return DatabaseCredential{}, err
	}
	if out.Token == "" {
		return DatabaseCredential{}, &APIError{Op: op, StatusCode: 200, Err: fmt.Errorf("the answer has no token")}
	}
	return DatabaseCredential{Token: out.Token, Expiry: out.ExpirationTime.OrDefault(time.Now())}, nil
}

// GetInstanceRequest names a Provisioned instance.
type GetInstanceRequest struct{ Name string }

// GetInstance looks up a Provisioned instance.
func (c *Client) GetInstance(ctx context.Context, req GetInstanceRequest) (Instance, error) {
	name := req.Name
	var inst Instance
	if !instanceName.MatchString(name) {
		return inst, fmt.Errorf("%w: instance name %q (letters, digits and hyphens)", ErrResourceName, name)
	}
	err := c.call(ctx, "look up instance "+name, http.MethodGet, "/api/2.0/database/instances/"+url.PathEscape(name), nil, &inst)
	return inst, err
}

// ListInstancesRequest lists the workspace's Provisioned instances.
type ListInstancesRequest struct{}

// ListInstances lists the Provisioned instances (every page).
func (c *Client) ListInstances(ctx context.Context, _ ListInstancesRequest) ([]Instance, error) {
	return list[Instance](ctx, c, "list instances", "/api/2.0/database/instances", "database_instances")
}

// ListProjectsRequest lists the workspace's Autoscaling projects.
type ListProjectsRequest struct{}

// ListProjects lists the Autoscaling projects' names (every page).
func (c *Client) ListProjects(ctx context.Context, _ ListProjectsRequest) ([]string, error) {
	type named struct {
		Name string `json:"name"`
	}
	ps, err := list[named](ctx, c, "list projects", "/api/2.0/postgres/projects", "projects")
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out, err
}

// ListBranchesRequest names the project (projects/<id>) whose branches to list.
type ListBranchesRequest struct{ Project string }

// ListBranches lists a project's branches (every page).
func (c *Client) ListBranches(ctx context.Context, req ListBranchesRequest) ([]Branch, error) {
	project := req.Project
	path, err := ResourcePath(project, "projects")
	if err != nil {
		return nil, err
	}
	return list[Branch](ctx, c, "list branches of "+project, path+"/branches", "branches")
}

// GetBranchRequest names a branch (projects/<p>/branches/<b>).
type GetBranchRequest struct{ Name string }

// GetBranch looks up a branch.
func (c *Client) GetBranch(ctx context.Context, req GetBranchRequest) (Branch, error) {
	branch := req.Name
	var b Branch
	path, err := ResourcePath(branch, "branches")
	if err != nil {
		return b, err
	}
	err = c.call(ctx, "look up branch "+branch, http.MethodGet, path, nil, &b)
	return b, err
}

// ListEndpointsRequest names the branch (projects/<p>/branches/<b>) whose
// endpoints to list.
type ListEndpointsRequest struct{ Branch string }

// ListEndpoints lists a branch's endpoints (every page).
func (c *Client) ListEndpoints(ctx context.Context, req ListEndpointsRequest) ([]Endpoint, error) {
	branch := req.Branch
	path, err := ResourcePath(branch, "branches")
	if err != nil {
		return nil, err
	}
	return list[Endpoint](ctx, c, "list endpoints of "+branch, path+"/endpoints", "endpoints")
}

// GetEndpointRequest names an endpoint (projects/<p>/branches/<b>/endpoints/<e>).
type GetEndpointRequest struct{ Name string }

// GetEndpoint looks up an Autoscaling endpoint.
func (c *Client) GetEndpoint(ctx context.Context, req GetEndpointRequest) (Endpoint, error) {
	name := req.Name
	var ep Endpoint
	path, err := ResourcePath(name, "endpoints")
	if err != nil {
		return ep, err
	}
	err = c.call(ctx, "look up endpoint "+name, http.MethodGet, path, nil, &ep)
	return ep, err
}

// ListAllEndpoints lists every Autoscaling endpoint of every project and branch,
// following every page of each listing. Names the service should not have given
// are never followed.
func (c *Client) ListAllEndpoints(ctx context.Context) ([]Endpoint, error) {
	projects, err := c.ListProjects(ctx, ListProjectsRequest{})
	if err != nil {
		return nil, err
	}
	var all []Endpoint
	for _, p := range projects {
		if _, err := ResourcePath(p, "projects"); err != nil {
			continue
		}
		branches, err := c.ListBranches(ctx, ListBranchesRequest{Project: p})
		if err != nil {
			return nil, err
		}
		for _, b := range branches {
			if _, err := ResourcePath(b.Name, "branches"); err != nil {
				continue
			}
			eps, err := c.ListEndpoints(ctx, ListEndpointsRequest{Branch: b.Name})
			if err != nil {
				return nil, err
			}
			all = append(all, eps...)
		}
	}
	return all, nil
}

// Me returns the SCIM userName of the token's identity: a user's e-mail, or a
// service principal's application id.
func (c *Client) Me(ctx context.Context) (string, error) {
	var out struct {
		UserName string `json:"userName"`
	}
	if err := c.call(ctx, "SCIM Me", http.MethodGet, "/api/2.0/preview/scim/v2/Me", nil, &out); err != nil {
		return "", err
	}
	if out.UserName == "" {
		return "", &APIError{Op: "SCIM Me", StatusCode: 200, Err: fmt.Errorf("the answer has no userName")}
	}
	return out.UserName, nil
}

// CreateBranchRequest asks for a new branch.
type CreateBranchRequest struct {
	Project  string        // projects/<p>
	BranchID string        // the new branch's id
	Source   string        // projects/<p>/branches/<b>; "" for the project's default branch
	TTL      time.Duration // how long it lives unless deleted; 0: until deleted
}

// CreateBranch starts making a branch; the operation's Wait returns it.
func (c *Client) CreateBranch(ctx context.Context, req CreateBranchRequest) (*Operation[Branch], error) {
	path, err := ResourcePath(req.Project, "projects")
	if err != nil {
		return nil, err
	}
	if !resourceID.MatchString(req.BranchID) {
		return nil, fmt.Errorf("%w: branch id %q breaks the service's rule (1-63 lowercase letters, digits and hyphens, starting with a letter)", ErrResourceName, req.BranchID)
	}
	spec := map[string]any{}
	if req.Source != "" {
		if _, err := ResourcePath(req.Source, "branches"); err != nil {
			return nil, err
		}
		spec["source_branch"] = req.Source
	}
	if req.TTL > 0 {
		spec["ttl"] = fmt.Sprintf("%ds", int(req.TTL/time.Second))
	}
	op := &Operation[Branch]{c: c}
	var at attempts
	start := time.Now()
	err = c.callTracked(ctx, "create branch "+req.BranchID, http.MethodPost, path+"/branches?branch_id="+url.QueryEscape(req.BranchID), map[string]any{"spec": spec}, &op.state, &at)
	if err != nil && at.unanswered && alreadyExists(err) {
		b, rerr := c.madeBranch(ctx, req, start)
		if rerr == errNoBranch {
			// No branch of the name: the lost attempt made none, and the 409 was
			// about something else (or the branch is gone); the service's answer stands.
			return nil, err
		}
		if rerr != nil {
			return nil, rerr
		}
		return c.branchReady(b), nil
	}
	return op, err
}

// branchReady is an operation that ends when branch b, made by a create whose
// answer was lost and read back as the one asked for, is READY (or fails when it
// is not on its way there). Every read is checked to be that branch still: of its
// name, made at the same time from the same source; a branch deleted and made
// again meanwhile (by someone else, from whatever source) is a *BranchExistsError,
// never the result. A failed read leaves the operation as it was, so a later Wait
// polls the same branch again.
func (c *Client) branchReady(b Branch) *Operation[Branch] {
	op := &Operation[Branch]{c: c}
	want := b
	made, _ := time.Parse(time.RFC3339Nano, want.CreateTime) // madeBranch read it
	op.until = func(ctx context.Context) (Branch, bool, error) {
		if b.Status.CurrentState != "READY" {
			got, err := c.GetBranch(ctx, GetBranchRequest{Name: want.Name})
			if err != nil {
				return Branch{}, false, err
			}
			var diffs differences
			diffs.add("name", got.Name, want.Name)
			diffs.add("source_branch", got.Source(), want.Source())
			if t, err := time.Parse(time.RFC3339Nano, got.CreateTime); err != nil || !t.Equal(made) {
				diffs = append(diffs, fmt.Sprintf("create_time %q, the branch read back was made at %s", got.CreateTime, want.CreateTime))
			}
			if len(diffs) > 0 {
				op.state.Done = true
				return Branch{}, false, &BranchExistsError{Name: want.Name, Differences: append(diffs, "the branch was deleted and made again while waiting for it")}
			}
			b = got
		}
		switch b.Status.CurrentState {
		case "READY", "": // "": a service that does not say; nothing to wait for
			op.state.Done = true
			return b, true, nil
		case "INIT", "IMPORTING", "RESETTING":
			return Branch{}, false, nil
		}
		op.state.Done = true
		return Branch{}, false, &APIError{Op: "create branch " + b.Name, StatusCode: 200, ErrorCode: "OPERATION_FAILED",
			Message: "the branch is " + b.Status.CurrentState}
	}
	return op
}

// errNoBranch is madeBranch's answer when there is no branch of the name.
var errNoBranch = errors.New("no branch of the name")

// branchClockSkew is how much earlier than this process's clock says the create
// began a branch made by a lost attempt may carry as its create_time.
const branchClockSkew = time.Minute

// madeBranch reads back the branch a create whose answer was lost may have made
// (started at start): it is taken for the one asked when it was made from the
// source asked (the project's default branch when none was) and not before the
// create began; otherwise a *BranchExistsError.
func (c *Client) madeBranch(ctx context.Context, req CreateBranchRequest, start time.Time) (Branch, error) {
	name := req.Project + "/branches/" + req.BranchID
	fail := func(diffs []string, err error) (Branch, error) {
		return Branch{}, &BranchExistsError{Name: name, Differences: diffs, Err: err}
	}
	b, err := c.GetBranch(ctx, GetBranchRequest{Name: name})
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		return Branch{}, errNoBranch
	}
	if err != nil {
		return fail(nil, err)
	}
	source := req.Source
	if source == "" {
		branches, err := c.ListBranches(ctx, ListBranchesRequest{Project: req.Project})
		if err != nil {
			return fail(nil, err)
		}
		for _, d := range branches {
			if d.IsDefault() {
				source = d.Name
			}
		}
		if source == "" {
			return fail(nil, fmt.Errorf("project %s shows no default branch", req.Project))
		}
	}
	var diffs differences
	diffs.add("name", b.Name, name) // a read answered with another branch, or none
	diffs.add("source_branch", b.Source(), source)
	made, err := time.Parse(time.RFC3339Nano, b.CreateTime)
	switch {
	case err != nil:
		diffs = append(diffs, fmt.Sprintf("create_time %q cannot be read", b.CreateTime))
	case made.Before(start.Add(-branchClockSkew)):
		diffs = append(diffs, "made at "+made.UTC().Format(time.RFC3339)+", before this create began")
	default:
		diffs = append(diffs, lifetimeDiffers(b, made, req.TTL)...)
	}
	if len(diffs) > 0 {
		return fail(diffs, nil)
	}
	return b, nil
}

// lifetimeDiffers names how the lifetime of branch b (made at made) differs from
// the ttl asked (0: until deleted), when the branch shows its expiry: a branch that
// expires when none was asked (it would vanish with its data), or lives on when a
// ttl was asked, or for another ttl (a minute allowed), is not the one asked for.
// A branch that shows no expiry when a ttl was asked cannot tell and is not refused.
func lifetimeDiffers(b Branch, made time.Time, ttl time.Duration) []string {
	shown := cmp.Or(b.ExpireTime, b.Status.ExpireTime)
	if shown == "" {
		return nil
	}
	expires, err := time.Parse(time.RFC3339Nano, shown)
	switch {
	case err != nil:
		return []string{fmt.Sprintf("expire_time %q cannot be read", shown)}
	case ttl <= 0:
		return []string{"expires at " + expires.UTC().Format(time.RFC3339) + ", asked no ttl"}
	case (expires.Sub(made) - ttl).Abs() > branchClockSkew:
		return []string{fmt.Sprintf("ttl %v, asked %v", expires.Sub(made).Round(time.Second), ttl)}
	}
	return nil
}

// DeleteBranchRequest names the branch (projects/<p>/branches/<b>) to delete.
type DeleteBranchRequest struct{ Name string }

// DeleteBranch starts deleting a branch; the operation is often done at once.
func (c *Client) DeleteBranch(ctx context.Context, req DeleteBranchRequest) (*Operation[struct{}], error) {
	branch := req.Name
	path, err := ResourcePath(branch, "branches")
	if err != nil {
		return nil, err
	}
	op := &Operation[struct{}]{c: c}
	err = c.call(ctx, "delete branch "+branch, http.MethodDelete, path, nil, &op.state)
	return op, err
}

// CreateEndpointRequest asks for a new endpoint on a branch.
type CreateEndpointRequest struct {
	Branch     string // projects/<p>/branches/<b>
	EndpointID string
	Type       EndpointType // default EndpointTypeReadWrite
}

// CreateEndpoint starts making an endpoint; the operation's Wait returns it.
func (c *Client) CreateEndpoint(ctx context.Context, req CreateEndpointRequest) (*Operation[Endpoint], error) {
	path, err := ResourcePath(req.Branch, "branches")
	if err != nil {
		return nil, err
	}
	if !resourceID.MatchString(req.EndpointID) {
		return nil, fmt.Errorf("%w: endpoint id %q breaks the service's rule", ErrResourceName, req.EndpointID)
	}
	typ := req.Type
	if typ == "" {
		typ = EndpointTypeReadWrite
	}
	op := &Operation[Endpoint]{c: c}
	body := map[string]any{"spec": map[string]any{"endpoint_type": typ}}
	err = c.call(ctx, "create endpoint "+req.EndpointID, http.MethodPost, path+"/endpoints?endpoint_id="+url.QueryEscape(req.EndpointID), body, &op.state)
	return op, err
}
