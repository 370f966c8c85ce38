package lakebase

import (
	"context"
	"errors"
	"net/http"

	"github.com/lakebase-go/lakebase/workspace"
)

// workspaceDatabase is what the connector asks the workspace about the database of
// its logins when a connect fails: the token pipeline answers (Connector.database);
// a native password has no workspace to ask.
type workspaceDatabase interface {
	// DatabaseState is the state of the endpoint or instance now ("" when not
	// known); the error of a disabled endpoint.
	DatabaseState(ctx context.Context) (string, error)
	// CheckRole reports where the role would be (the branch or instance) and
	// whether no role has exactly that name (Postgres role names are
	// case-sensitive); err is the roles API's failure.
	CheckRole(ctx context.Context, user string) (where string, missing bool, err error)
}

// missingRole turns a login refused twice with 28P01 into a NoRoleError when the
// workspace says the identity has no role there (or cannot say: 403), else returns
// lerr. It mints nothing.
func (c *Connector) missingRole(ctx context.Context, lerr *LoginError) error {
	if c.database == nil || lerr.SQLState != "28P01" {
		return lerr
	}
	where, missing, err := c.database.CheckRole(ctx, lerr.User)
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
