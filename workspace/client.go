package workspace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// Options are the optional parts of a Client.
type Options struct {
	// OnTokenRefused is called when the workspace refuses the token of a call (401,
	// or 403): it returns the token to try once more (after dropping the refused one
	// wherever it is kept), or an error. Without it the refusal is the call's error.
	OnTokenRefused func(ctx context.Context, refused string, err error) (string, error)
	// Retry is the policy for transient failures (5xx, 429, transport errors).
	Retry httpx.Retry
	// OnRetry, if set, is told of each retried call.
	OnRetry func(op string, attempt int, wait time.Duration, err error)
	// WorkspaceID, when known, goes on every request as X-Databricks-Workspace-Id,
	// as the Go SDK sends it: a unified host serves many workspaces. When it is not,
	// KnownWorkspaceID may name one already learned, and ResolveWorkspaceID is asked
	// once (the host's metadata) after a call is answered 400 without one; the call
	// is then made again with it.
	//
	// A resolution that fails is not kept: a later call answered 400 asks again.
	// WorkspaceIDRefused, when set, is asked when a call that named a workspace id
	// not given as WorkspaceID (one learned, perhaps from a store) is answered 400
	// ("Workspace <id> is not available on this host"): it returns the id to use
	// now (the host's metadata read again), and the call is made once more with it
	// when it differs.
	WorkspaceID        string
	KnownWorkspaceID   func() string
	ResolveWorkspaceID func(ctx context.Context) (string, error)
	WorkspaceIDRefused func(ctx context.Context, refused string) (string, error)
}

// Client calls a workspace's Lakebase and SCIM REST APIs with the workspace token
// of its TokenSource.
type Client struct {
	host   string
	tokens oauth2.TokenSource
	http   *http.Client
	opts   Options

	wsMu       sync.Mutex // guards wsID and wsResolved (held briefly)
	wsID       string     // resolved
	wsResolved bool
	resolveMu  sync.Mutex // one resolution at a time
}

// workspaceID is the id to send, if any is known.
func (c *Client) workspaceID() string {
	if c.opts.WorkspaceID != "" {
		return c.opts.WorkspaceID
	}
	c.wsMu.Lock()
	id := c.wsID
	c.wsMu.Unlock()
	if id == "" && c.opts.KnownWorkspaceID != nil {
		id = c.opts.KnownWorkspaceID()
	}
	return id
}

// resolveWorkspaceID asks ResolveWorkspaceID once (concurrent callers wait for
// it) and returns the id now known, if any.
func (c *Client) resolveWorkspaceID(ctx context.Context) string {
	if id := c.workspaceID(); id != "" || c.opts.ResolveWorkspaceID == nil {
		return id
	}
	c.resolveMu.Lock()
	defer c.resolveMu.Unlock()
	c.wsMu.Lock()
	done := c.wsResolved || c.wsID != ""
	c.wsMu.Unlock()
	if !done {
		id, err := c.opts.ResolveWorkspaceID(ctx)
		if err == nil { // a failure is not kept: the next refused call asks again
			c.wsMu.Lock()
			c.wsResolved, c.wsID = true, id
			c.wsMu.Unlock()
		}
	}
	return c.workspaceID()
}

// New returns a client of the workspace at host (https://..., or http:// for a
// loopback emulator), authenticating with tokens and sending through hc (nil:
// http.DefaultClient); redirects are never followed.
func New(host string, tokens oauth2.TokenSource, hc *http.Client, opts Options) *Client {
	return &Client{host: strings.TrimRight(host, "/"), tokens: tokens, http: httpx.Client(hc), opts: opts}
}

// Host returns the workspace URL.
func (c *Client) Host() string { return c.host }

func (c *Client) token(ctx context.Context) (string, error) {
	if c.tokens == nil {
		return "", &APIError{Op: "authenticate", Err: fmt.Errorf("no token source")}
	}
	var t *oauth2.Token
	var err error
	if cts, ok := c.tokens.(interface {
		TokenContext(context.Context) (*oauth2.Token, error)
	}); ok {
		t, err = cts.TokenContext(ctx)
	} else {
		t, err = c.tokens.Token()
	}
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// refusedToken reports whether the API refused the token itself: 401, or 403
// (Databricks answers an expired or revoked token with 403 "Invalid access token"
// as often as with 401).
func refusedToken(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden)
}

// call makes one API call with the workspace token (retrying transient failures),
// and once more with a new token when the token was refused.
func (c *Client) call(ctx context.Context, op, method, path string, in, out any) error {
	return c.callTracked(ctx, op, method, path, in, out, nil)
}

// attempts is what the attempts of one call came to, for a call that is not
// idempotent (a create): whether one of them may have been carried out although
// its answer never came back.
type attempts struct {
	unanswered bool
}

// note records the outcome of one attempt.
func (a *attempts) note(err error) {
	if a != nil && mayHaveBeenApplied(err) {
		a.unanswered = true
	}
}

// mayHaveBeenApplied reports whether a failed attempt may have been carried out
// by the service: its answer was lost after the request may have been sent (a
// timeout, a connection dropped or reset once the request went out), or the
// answer was a 5xx (a proxy's 502 or 504 in front of a service that went on).
// A request refused before it reached the service (a failed dial or name
// lookup, a TLS certificate that does not verify, a refused redirect), a 4xx
// answer and a 503 with Retry-After (the service declined it) were not.
func mayHaveBeenApplied(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	if ae.StatusCode >= 500 {
		return ae.StatusCode != http.StatusServiceUnavailable || ae.wait <= 0
	}
	return ae.StatusCode == 0 && ae.Err != nil && !httpx.NotSent(ae.Err)
}

// alreadyExists reports whether err is the service's answer that the resource
// exists (409, ALREADY_EXISTS or RESOURCE_ALREADY_EXISTS).
func alreadyExists(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusConflict || ae.ErrorCode == "ALREADY_EXISTS" || ae.ErrorCode == "RESOURCE_ALREADY_EXISTS")
}

// callTracked is call, recording the outcome of every attempt in at (when set).
func (c *Client) callTracked(ctx context.Context, op, method, path string, in, out any, at *attempts) error {
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	sent := c.workspaceID()
	err = c.withRetry(ctx, op, method, path, tok, in, out, at)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && sent == "" && c.resolveWorkspaceID(ctx) != "" {
		// A unified host refuses a call that does not say which workspace it is for.
		sent = c.workspaceID()
		err = c.withRetry(ctx, op, method, path, tok, in, out, at)
	}
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && sent != "" && sent != c.opts.WorkspaceID &&
		c.opts.WorkspaceIDRefused != nil {
		// The id was learned (from a store, say) and the host may no longer take it.
		if id, rerr := c.opts.WorkspaceIDRefused(ctx, sent); rerr == nil && id != "" && id != sent {
			c.wsMu.Lock()
			c.wsResolved, c.wsID = true, id
			c.wsMu.Unlock()
			err = c.withRetry(ctx, op, method, path, tok, in, out, at)
		}
	}
	if !refusedToken(err) || c.opts.OnTokenRefused == nil {
		return err
	}
	if tok, err = c.opts.OnTokenRefused(ctx, tok, err); err != nil {
		return err
	}
	return c.withRetry(ctx, op, method, path, tok, in, out, at)
}

func (c *Client) withRetry(ctx context.Context, op, method, path, tok string, in, out any, at *attempts) error {
	return c.opts.Retry.Do(ctx, func(ctx context.Context) error {
		err := c.do(ctx, op, method, path, tok, in, out)
		at.note(err)
		return err
	}, func(attempt int, wait time.Duration, err error) {
		if c.opts.OnRetry != nil {
			c.opts.OnRetry(op, attempt, wait, err)
		}
	})
}

func (c *Client) do(ctx context.Context, op, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.host+path, body)
	if err != nil {
		return &APIError{Op: op, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if id := c.workspaceID(); id != "" {
		req.Header.Set("X-Databricks-Workspace-Id", id)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &APIError{Op: op, Err: httpx.RedactURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &APIError{Op: op, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			ErrorCode string `json:"error_code"`
			Message   string `json:"message"`
		}
		json.Unmarshal(data, &e)
		return &APIError{Op: op, StatusCode: resp.StatusCode, ErrorCode: e.ErrorCode, Message: e.Message, wait: httpx.ParseRetryAfter(resp.Header)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return &APIError{Op: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("malformed answer: %w", err)}
		}
	}
	return nil
}

// maxPages bounds a listing, against a service that never stops answering a next page.
const maxPages = 10000

// list calls a list API page by page (page_token, next_page_token) and returns the
// items under key of every page.
func list[T any](ctx context.Context, c *Client, op, path, key string) ([]T, error) {
	var all []T
	pageToken := ""
	for range maxPages {
		p := path
		if pageToken != "" {
			p += "?page_token=" + url.QueryEscape(pageToken)
		}
		var page map[string]json.RawMessage
		if err := c.call(ctx, op, http.MethodGet, p, nil, &page); err != nil {
			return nil, err
		}
		if raw, ok := page[key]; ok {
			var items []T
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, &APIError{Op: op, StatusCode: 200, Err: fmt.Errorf("malformed answer: %w", err)}
			}
			all = append(all, items...)
		}
		var next string
		if raw, ok := page["next_page_token"]; ok {
			json.Unmarshal(raw, &next)
		}
		if next == "" || next == pageToken {
			return all, nil
		}
		pageToken = next
	}
	return nil, &APIError{Op: op, StatusCode: 200, Err: fmt.Errorf("more than %d pages", maxPages)}
}
