package workspace

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// ErrEndpointDisabled is matched by the error of a disabled endpoint
// (spec.disabled): it takes no connections and never wakes on one.
var ErrEndpointDisabled = errors.New("lakebase: the endpoint is disabled")

// PropertyError reports a lookup that failed because of what a connection-string
// property names (a project, branch or server the workspace does not know); the
// driver reports it as its configuration error for Property.
type PropertyError struct {
	Property, Value string
	Err             error
}

func (e *PropertyError) Error() string { return e.Property + " " + e.Err.Error() }

// Unwrap returns the cause.
func (e *PropertyError) Unwrap() error { return e.Err }

// LocateRequest says which database a login is for: an endpoint or an instance by
// name, a project's branch (its default branch when Branch is empty), or a host to
// find among the workspace's instances and endpoints; and which of its hosts.
type LocateRequest struct {
	Endpoint, Instance string
	Project, Branch    string // IDs, as the connection string gives them
	Server             string
	ReadOnly, Pooled   bool
}

// Location is a database a credential is minted for, and its host.
type Location struct {
	Instance string // Provisioned
	Endpoint string // Autoscaling
	Host     string
	State    string // current_state (Autoscaling) or state (Provisioned) when looked up
}

// Name is how messages name the database.
func (l Location) Name() string {
	switch {
	case l.Endpoint != "":
		return "endpoint " + l.Endpoint
	case l.Instance != "":
		return "instance " + l.Instance
	}
	return "host " + l.Host
}

// CheckState refuses a database whose state means it cannot take connections now;
// IDLE endpoints (scaled to zero) and starting instances wake on connect.
func (l Location) CheckState() error {
	switch l.State {
	case "", "ACTIVE", "IDLE", "AVAILABLE", "STARTING", "UPDATING", "FAILING_OVER":
		return nil
	case "INIT":
		return fmt.Errorf("lakebase: %s is INIT (its compute is being created); connect when it is ACTIVE or IDLE", l.Name())
	case "DEGRADED":
		return fmt.Errorf("lakebase: %s is DEGRADED; check it in the workspace (Compute of the Lakebase project) before connecting", l.Name())
	case "STOPPED":
		return fmt.Errorf("lakebase: %s is STOPPED; start it in the workspace (or with the Databricks CLI) to connect", l.Name())
	}
	return fmt.Errorf("lakebase: %s is %s and cannot take connections", l.Name(), l.State)
}

// Locate asks the workspace which database r names, its host and its state: the
// resolver of a login (which host, which state), on this client.
func (c *Client) Locate(ctx context.Context, r LocateRequest) (Location, error) {
	l := Location{Instance: r.Instance, Endpoint: r.Endpoint}
	switch {
	case r.Project != "":
		return c.locateBranch(ctx, r)
	case r.Endpoint != "":
		ep, err := c.GetEndpoint(ctx, GetEndpointRequest{Name: r.Endpoint})
		if err != nil {
			return l, err
		}
		l.State = string(ep.Status.CurrentState)
		if ep.Spec.Disabled {
			return l, DisabledError(ep.Name)
		}
		if err := l.CheckState(); err != nil {
			return l, err
		}
		l.Host, err = ep.pickHost(r.Pooled, r.ReadOnly)
		return l, err
	case r.Instance != "":
		inst, err := c.GetInstance(ctx, GetInstanceRequest{Name: r.Instance})
		if err != nil {
			return l, err
		}
		l.Host, l.State = inst.ReadWriteDNS, string(inst.State)
		if err := l.CheckState(); err != nil {
			return l, err
		}
		if r.ReadOnly {
			if l.Host = inst.ReadOnlyDNS; l.Host == "" {
				return l, fmt.Errorf("lakebase: instance %s has no read_only_dns (ReadOnly=true needs readable secondaries)", r.Instance)
			}
		}
		if l.Host == "" {
			return l, fmt.Errorf("lakebase: instance %s has no read_write_dns yet (state %q)", r.Instance, inst.State)
		}
		return l, nil
	case r.Server != "":
		l.Host = r.Server
		return l, c.findByHost(ctx, &l)
	}
	return l, &PropertyError{Property: "Endpoint", Err: errors.New("or Instance is needed to mint database credentials (Endpoint=projects/<p>/branches/<b>/endpoints/<e> for Lakebase Autoscaling, Instance=<name> for Provisioned)")}
}

// locateBranch finds the endpoint of r's project and branch (the default branch
// when none is named): its read-write endpoint, or its read-only one.
func (c *Client) locateBranch(ctx context.Context, r LocateRequest) (Location, error) {
	project := "projects/" + r.Project
	branch := ""
	if r.Branch != "" {
		branch = project + "/branches/" + r.Branch
	} else {
		branches, err := c.ListBranches(ctx, ListBranchesRequest{Project: project})
		if err != nil {
			return Location{}, notFound(err, "Project", r.Project, "project "+project+" does not exist in this workspace, or the identity cannot see it")
		}
		for _, b := range branches {
			if b.IsDefault() {
				branch = b.Name
				break
			}
		}
		if branch == "" {
			return Location{}, &PropertyError{Property: "Branch", Err: fmt.Errorf("is needed: project %s has no default branch", project)}
		}
	}
	eps, err := c.ListEndpoints(ctx, ListEndpointsRequest{Branch: branch})
	if err != nil {
		return Location{}, notFound(err, "Branch", r.Branch, "branch "+branch+" does not exist (it may have been deleted or expired), or the identity cannot see it")
	}
	want, kind := EndpointTypeReadWrite, "read-write"
	if r.ReadOnly {
		want, kind = EndpointTypeReadOnly, "read-only"
	}
	for _, ep := range eps {
		if ep.Type() != want {
			continue
		}
		if ep.Spec.Disabled {
			return Location{}, DisabledError(ep.Name)
		}
		l := Location{Endpoint: ep.Name, Host: ep.Status.Hosts.Host, State: string(ep.Status.CurrentState)}
		if r.Pooled {
			// The branch's read-only endpoint is a compute of its own: its pooler is
			// its pooled host, whichever field names it.
			h := ep.Status.Hosts
			if l.Host = h.ReadWritePooledHost; r.ReadOnly && h.ReadOnlyPooledHost != "" {
				l.Host = h.ReadOnlyPooledHost
			}
			if l.Host == "" {
				return l, fmt.Errorf("lakebase: endpoint %s of branch %s has no pooled host: connect to its direct host (Pooled=false)", ep.Name, branch)
			}
		}
		if l.Host == "" {
			return l, fmt.Errorf("lakebase: endpoint %s of branch %s has no host yet (state %q)", ep.Name, branch, ep.Status.CurrentState)
		}
		return l, l.CheckState()
	}
	return Location{}, fmt.Errorf("lakebase: branch %s has no %s endpoint; create one (lakebase branch create makes it with the branch)", branch, kind)
}

// IsNotFound reports whether a workspace API answered 404 (NOT_FOUND).
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// notFound turns a 404 of a lookup into a PropertyError naming the property.
func notFound(err error, prop, value, msg string) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		return &PropertyError{Property: prop, Value: value, Err: fmt.Errorf("%s: %s", msg, ae.Message)}
	}
	return err
}

// DisabledError is the error of a disabled endpoint: it is never waited for.
func DisabledError(endpoint string) error {
	return fmt.Errorf("%w: %s (spec.disabled): it takes no connections and does not wake on one; enable it in the workspace (or with the endpoints API) and connect again", ErrEndpointDisabled, endpoint)
}

// State asks the workspace for the state of an endpoint or instance now (a connect
// failed as a waking compute does; the state of a lookup may be old): "" when it
// cannot say, and the error of a disabled endpoint, which never wakes.
func (c *Client) State(ctx context.Context, l Location) (string, error) {
	switch {
	case l.Endpoint != "":
		ep, err := c.GetEndpoint(ctx, GetEndpointRequest{Name: l.Endpoint})
		if err != nil {
			return "", nil
		}
		if ep.Spec.Disabled {
			return "", DisabledError(ep.Name)
		}
		return string(ep.Status.CurrentState), nil
	case l.Instance != "":
		inst, err := c.GetInstance(ctx, GetInstanceRequest{Name: l.Instance})
		if err != nil {
			return "", nil
		}
		return string(inst.State), nil
	}
	return "", nil
}

// RoleMissing lists the roles of the endpoint's branch (Autoscaling, every page) or
// of the instance (Provisioned) and looks for user among them by its exact name
// (FindRole: Postgres role names are case-sensitive, so a role "Robert" is not the
// role of "robert"). Several roles listed under exactly that name still mean the
// role exists. where names the branch or instance; err is the roles API's failure.
func (c *Client) RoleMissing(ctx context.Context, l Location, user string) (where string, missing bool, err error) {
	switch {
	case l.Endpoint != "":
		branch := l.Endpoint
		if i := strings.Index(branch, "/endpoints/"); i >= 0 {
			branch = branch[:i]
		}
		roles, err := c.ListRoles(ctx, ListRolesRequest{Branch: branch})
		if err != nil {
			return "branch " + branch, false, err
		}
		_, err = FindRole(roles, user, "branch "+branch)
		return "branch " + branch, errors.Is(err, ErrRoleNotFound), nil
	case l.Instance != "":
		roles, err := c.ListInstanceRoles(ctx, ListInstanceRolesRequest{Instance: l.Instance})
		if err != nil {
			return "instance " + l.Instance, false, err
		}
		_, err = FindInstanceRole(roles, user, "instance "+l.Instance)
		return "instance " + l.Instance, errors.Is(err, ErrRoleNotFound), nil
	}
	return "", false, nil
}

// pickHost is the endpoint's host a login asks for: direct or pooled, read-write
// or read-only.
func (ep *Endpoint) pickHost(pooled, readOnly bool) (string, error) {
	h := ep.Status.Hosts
	switch {
	case pooled && readOnly:
		if h.ReadOnlyPooledHost == "" {
			return "", fmt.Errorf("lakebase: endpoint %s has no read-only pooled host (Pooled=true with ReadOnly=true needs a read replica with a pooler)", ep.Name)
		}
		return h.ReadOnlyPooledHost, nil
	case pooled:
		if h.ReadWritePooledHost == "" {
			return "", fmt.Errorf("lakebase: endpoint %s has no pooled host (status.hosts.read_write_pooled_host is empty): connect to its direct host (Pooled=false)", ep.Name)
		}
		return h.ReadWritePooledHost, nil
	case readOnly:
		if h.ReadOnlyHost == "" {
			return "", fmt.Errorf("lakebase: endpoint %s has no read-only host (ReadOnly=true needs a read replica)", ep.Name)
		}
		return h.ReadOnlyHost, nil
	}
	if h.Host == "" {
		return "", fmt.Errorf("lakebase: endpoint %s has no host yet (state %q)", ep.Name, ep.Status.CurrentState)
	}
	return h.Host, nil
}

// findByHost finds the instance or endpoint whose host is l.Host.
func (c *Client) findByHost(ctx context.Context, l *Location) error {
	var errs []error
	insts, err := c.ListInstances(ctx, ListInstancesRequest{})
	if err == nil {
		for _, in := range insts {
			if strings.EqualFold(in.ReadWriteDNS, l.Host) || strings.EqualFold(in.ReadOnlyDNS, l.Host) {
				l.Instance = in.Name
				return nil
			}
		}
	} else {
		errs = append(errs, err)
	}
	eps, err := c.ListAllEndpoints(ctx)
	if err == nil {
		for _, ep := range eps {
			h := ep.Status.Hosts
			if slices.ContainsFunc([]string{h.Host, h.ReadOnlyHost, h.ReadWritePooledHost, h.ReadOnlyPooledHost},
				func(s string) bool { return s != "" && strings.EqualFold(s, l.Host) }) {
				l.Endpoint = ep.Name
				return nil
			}
		}
	} else {
		errs = append(errs, err)
	}
	if len(errs) > 0 && RefusedToken(errors.Join(errs...)) {
		return errors.Join(errs...)
	}
	cause := ""
	if len(errs) > 0 {
		cause = " (" + errors.Join(errs...).Error() + ")"
	}
	return &PropertyError{Property: "Server", Value: l.Host, Err: fmt.Errorf("matches no Lakebase instance or endpoint of the workspace%s; set Instance or Endpoint", cause)}
}

// RefusedToken reports whether a workspace API refused the token itself: 401, or
// 403 (Databricks answers an expired or revoked token with 403 "Invalid access
// token" as often as with 401).
func RefusedToken(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden)
}
