package lakebase

import (
	"context"
	"database/sql/driver"

	"github.com/lakebase-go/lakebase/storedproc"
)

// execVirtual answers query when it is a call of a virtual procedure (ok=true).
func (c *Connector) execVirtual(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, bool, error) {
	call, ok, err := storedproc.Parse(query)
	if !ok || err != nil {
		return nil, ok, err
	}
	rows, err := c.runProcedure(ctx, call, args)
	return rows, true, err
}

// prepareVirtual returns a statement for a virtual procedure call (ok=true).
func (c *Connector) prepareVirtual(query string) (driver.Stmt, bool, error) {
	call, ok, err := storedproc.Parse(query)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &virtualStmt{c: c, call: call}, true, nil
}

func (c *Connector) runProcedure(ctx context.Context, call *storedproc.Call, args []driver.NamedValue) (driver.Rows, error) {
	in, err := call.Bind(args)
	if err != nil {
		return nil, err
	}
	return c.procedure(ctx, call.Proc.Name, in)
}

// virtualStmt is a prepared call of a virtual procedure.
type virtualStmt struct {
	c    *Connector
	call *storedproc.Call
}

func (s *virtualStmt) Close() error { return nil }

// NumInput returns -1: named and positional placeholders are checked when bound.
func (s *virtualStmt) NumInput() int { return -1 }

func (s *virtualStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), namedValues(args))
}

func (s *virtualStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), namedValues(args))
}

func (s *virtualStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	rows, err := s.c.runProcedure(ctx, s.call, args)
	if err != nil {
		return nil, err
	}
	rows.Close()
	return driver.RowsAffected(0), nil
}

func (s *virtualStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.runProcedure(ctx, s.call, args)
}

func namedValues(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, v := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}
