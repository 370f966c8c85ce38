package lakebase

import (
	"cmp"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/storedproc"
)

// The EXEC procedures are thin adapters over the Connector's login steps
// (AuthorizationURL, ExchangeCode, BrowserLogin, RefreshToken): they bind inputs,
// call the step, and return its result as rows.

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

// procedure answers a virtual procedure call with bound inputs.
func (c *Connector) procedure(ctx context.Context, name string, in map[string]string) (driver.Rows, error) {
	p := storedproc.Lookup(name)
	if c.steps == nil {
		return nil, &storedproc.Error{Proc: p.Name, Msg: fmt.Sprintf("the OAuth login procedures need AuthScheme=OAuthPKCE or OAuthClient, the schemes that can log a person in (AuthScheme=%s logs in without one)", c.cfg.AuthScheme),
			Err: ErrNoPersonLogin}
	}
	rows, err := c.runStep(ctx, p, in)
	var ie *InputError
	if errors.As(err, &ie) {
		input := ie.Input
		if input == "Code" {
			input = "Verifier"
		}
		return nil, &storedproc.Error{Proc: p.Name, Input: input, Msg: ie.Msg, Err: err}
	}
	return rows, err
}

func (c *Connector) runStep(ctx context.Context, p *storedproc.Procedure, in map[string]string) (driver.Rows, error) {
	switch p.Name {
	case storedproc.GetOAuthAuthorizationURL:
		a, err := c.AuthorizationURL(ctx, AuthorizationRequest{CallbackURL: in["CallbackUrl"], Scope: in["Scope"], State: in["State"]})
		if err != nil {
			return nil, err
		}
		return storedproc.NewRows(p.Columns, []driver.Value{a.URL, a.State, a.PKCEVerifier}), nil
	case storedproc.GetOAuthAccessToken:
		var tok *oauth2.Token
		var err error
		switch mode := strings.ToUpper(cmp.Or(in["AuthMode"], "WEB")); mode {
		case "APP":
			tok, err = c.BrowserLogin(ctx)
		case "WEB":
			if in["Verifier"] == "" {
				return nil, &storedproc.Error{Proc: p.Name, Input: "Verifier", Msg: "is required with AuthMode=WEB (the code from the callback URL)"}
			}
			tok, err = c.ExchangeCode(ctx, CodeExchange{Code: in["Verifier"], State: in["State"], CallbackURL: in["CallbackUrl"], PKCEVerifier: in["PKCEVerifier"]})
		default:
			return nil, &storedproc.Error{Proc: p.Name, Input: "AuthMode", Msg: "must be WEB or APP"}
		}
		if err != nil {
			return nil, err
		}
		return tokenRows(p, tok), nil
	case storedproc.RefreshOAuthAccessToken:
		tok, err := c.RefreshToken(ctx, in["OAuthRefreshToken"])
		if err != nil {
			return nil, err
		}
		return tokenRows(p, tok), nil
	}
	return nil, fmt.Errorf("lakebase: unknown procedure %s", p.Name)
}

func tokenRows(p *storedproc.Procedure, t *oauth2.Token) driver.Rows {
	var refresh driver.Value
	if t.RefreshToken != "" {
		refresh = t.RefreshToken
	}
	return storedproc.NewRows(p.Columns, []driver.Value{t.AccessToken, refresh, oauth.ExpiresIn(t, time.Now())})
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
