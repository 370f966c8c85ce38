package lakebase

import (
	"context"
	"database/sql/driver"
	"errors"
)

func newOAuthAuth(c *Connector) (authenticator, error) { return nil, errors.New("not yet") }

func (c *Connector) procedure(ctx context.Context, name string, in map[string]string) (driver.Rows, error) {
	return nil, errors.New("not yet")
}
