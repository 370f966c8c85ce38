package lakebase

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/lakebase-go/lakebase/workspace"
)

// workspaceDatabase is what the connector asks the workspace about the database of
// its logins when a connect fails: the token pipeline answers (Connector.database);
// a native password has no workspace to ask.
type workspaceDatabase interface {
	// databaseState is the state of the endpoint or instance now ("" when not
	// known); the error of a disabled endpoint.
	databaseState(ctx context.Context) (string, error)
	// checkRole reports where the role would be (the branch or instance) and
	// whether it is missing; err is the roles API's failure.
	checkRole(ctx context.Context, user string) (where string, missing bool, err error)
}

// checkRole lists the roles of the endpoint's branch (Autoscaling, every page) or
// of the instance (Provisioned) and looks for user among them by its exact name
// (workspace.FindRole: Postgres role names are case-sensitive, so a role "Robert"
// is not the role of "robert"). Several roles listed under exactly that name
// still mean the role exists.
func (p *tokenPipeline) checkRole(ctx context.Context, user string) (string, bool, error) {
	t, err := p.resolveTarget(ctx)
	if err != nil {
		return "", false, err
	}
	switch {
	case t.endpoint != "":
		branch := t.endpoint
		if i := strings.Index(branch, "/endpoints/"); i >= 0 {
			branch = branch[:i]
		}
		roles, err := p.rest.ListRoles(ctx, workspace.ListRolesRequest{Branch: branch})
		if err != nil {
			return "branch " + branch, false, err
		}
		_, err = workspace.FindRole(roles, user, "branch "+branch)
		return "branch " + branch, errors.Is(err, workspace.ErrRoleNotFound), nil
	case t.instance != "":
		roles, err := p.rest.ListInstanceRoles(ctx, workspace.ListInstanceRolesRequest{Instance: t.instance})
		if err != nil {
			return "instance " + t.instance, false, err
		}
		_, err = workspace.FindInstanceRole(roles, user, "instance "+t.instance)
		return "instance " + t.instance, errors.Is(err, workspace.ErrRoleNotFound), nil
	}
	return "", false, nil
}

// missingRole turns a login refused twice with 28P01 into a NoRoleError when the
// workspace says the identity has no role there (or cannot say: 403), else returns
// lerr. It mints nothing.
func (c *Connector) missingRole(ctx context.Context, lerr *LoginError) error {
	if c.database == nil || lerr.SQLState != "28P01" {
		return lerr
	}
	where, missing, err := c.database.checkRole(ctx, lerr.User)
	var ae *workspace.APIError
	switch {
	case err != nil && errors.As(err, &ae) && (ae.StatusCode == http.StatusForbidden || ae.StatusCode == http.StatusUnauthorized):
		return &NoRoleError{Identity: lerr.User, Where: where, Unknown: true, Err: lerr}
	case err != nil:
		c.logger.Debug("lakebase: the roles could not be listed after a refused login: " + err.Error())
		return lerr
	case missing:
		return &NoRoleError{Identity: lerr.User, Where: where, Err: lerr}
	}
	return lerr
}
