package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// HostMetadata is a Databricks host's GET /.well-known/databricks-config, as the
// Go SDK reads it: where OIDC lives (oidc_endpoint, which may hold an {account_id}
// placeholder), the workspace and account ids, and the host type.
type HostMetadata struct {
	OIDCEndpoint string `json:"oidc_endpoint"`
	AccountID    string `json:"account_id"`
	WorkspaceID  string `json:"workspace_id"`
	Cloud        string `json:"cloud"`
	HostType     string `json:"host_type"` // WORKSPACE_HOST, ACCOUNT_HOST or UNIFIED_HOST
}

// OIDCRoot is OIDCEndpoint with {account_id} filled in ("" when it cannot be).
func (m *HostMetadata) OIDCRoot() string {
	root := m.OIDCEndpoint
	if strings.Contains(root, "{account_id}") {
		if m.AccountID == "" {
			return ""
		}
		root = strings.ReplaceAll(root, "{account_id}", m.AccountID)
	}
	if root != "" && !SecureURL(root) {
		return ""
	}
	return strings.TrimRight(root, "/")
}

// FetchHostMetadata reads host's metadata (no token is sent).
func FetchHostMetadata(ctx context.Context, hc *http.Client, host string) (*HostMetadata, error) {
	u := strings.TrimRight(host, "/") + "/.well-known/databricks-config"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &TokenError{Op: "host metadata", Err: err}
	}
	resp, err := httpx.Client(hc).Do(req)
	if err != nil {
		return nil, &TokenError{Op: "host metadata", Err: httpx.RedactURLError(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, &TokenError{Op: "host metadata", StatusCode: resp.StatusCode, wait: parseRetryAfter(resp.Header)}
	}
	var m HostMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, &TokenError{Op: "host metadata", StatusCode: resp.StatusCode, Code: "invalid_response", Description: fmt.Sprintf("not JSON: %v", err)}
	}
	return &m, nil
}

// HostMetadataCache reads a host's metadata when first needed and keeps it once it
// was read: the OIDC discovery fallback and the workspace id of unified hosts share
// it. A failure is never kept: transient failures (5xx, 429, transport errors) are
// retried within the caller's context (Retry), and a read that still fails fails
// that call only; the next call reads again.
//
// Metadata read back from the store (Load) is kept apart from metadata the host
// answered in this process: only the workspace id is taken from the store (it
// names a workspace on the same host; it sends nothing anywhere else), while
// GetFromHost, which the OIDC discovery uses to find where a client secret or a
// grant goes, answers only with what the host itself said. A stored workspace id
// the host refuses is dropped with the stored metadata (Refused).
type HostMetadataCache struct {
	HTTP *http.Client
	Host string
	// Retry is the policy for transient failures of the read.
	Retry Retry
	// Load and Save, when set, keep the metadata beyond the process (the settings
	// store): Load is asked first; what is read from the host is given to Save.
	// Drop, when set, removes the stored metadata (Refused calls it).
	Load func(ctx context.Context) *HostMetadata
	Save func(ctx context.Context, m *HostMetadata)
	Drop func(ctx context.Context)

	mu     sync.Mutex
	saved  bool          // m was given to Save
	m      *HostMetadata // read from the host in this process
	stored *HostMetadata // read back by Load: never decides where a request goes
	loaded bool          // Load was asked (or the stored metadata was dropped)
}

// Flush gives metadata read from the host by GetFromHost to Save, once; call it
// where the store's lock is not held.
func (c *HostMetadataCache) Flush(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m != nil && !c.saved && c.Save != nil {
		c.Save(ctx, c.m)
		c.saved = true
	}
}

// Get returns the metadata, reading it on the first call (from Load, else from the
// host, then given to Save). What Load returned is good for the workspace id only.
func (c *HostMetadataCache) Get(ctx context.Context) (*HostMetadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m != nil {
		return c.m, nil
	}
	if !c.loaded && c.Load != nil {
		c.stored, c.loaded = c.Load(ctx), true
	}
	if c.stored != nil {
		return c.stored, nil
	}
	return c.readAndSave(ctx)
}

// GetFromHost returns the metadata the host answered, reading it from the host
// when it has not been read in this process; it never answers with what Load
// returned. Use it for anything that decides where a request goes (the OIDC
// endpoint). It does not call Load or Save: its callers may hold the store's lock
// (the OIDC discovery of a token fetch), which Load and Save take; Flush saves what
// it read.
func (c *HostMetadataCache) GetFromHost(ctx context.Context) (*HostMetadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m != nil {
		return c.m, nil
	}
	m, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	c.m, c.saved = m, false
	return m, nil
}

// Refused is told that the host refused the workspace id id (HTTP 400 "Workspace
// <id> is not available on this host"). When id came from the store, the stored
// metadata is dropped (in memory and, through Drop, in the store), read from the
// host again and given to Save; the metadata now known is returned. When the host
// itself said id in this process, it is returned as it is (reading again would
// tell nothing new).
func (c *HostMetadataCache) Refused(ctx context.Context, id string) (*HostMetadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m != nil {
		return c.m, nil
	}
	if c.stored != nil && c.stored.WorkspaceID == id {
		c.stored, c.loaded = nil, true
		if c.Drop != nil {
			c.Drop(ctx)
		}
	}
	if c.stored != nil {
		return c.stored, nil
	}
	return c.readAndSave(ctx)
}

// readAndSave reads the host's metadata, keeps it and gives it to Save.
func (c *HostMetadataCache) readAndSave(ctx context.Context) (*HostMetadata, error) {
	m, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	c.m = m
	if c.Save != nil {
		c.Save(ctx, m)
		c.saved = true
	}
	return m, nil
}

// read reads the host's metadata, retrying transient failures within ctx.
func (c *HostMetadataCache) read(ctx context.Context) (*HostMetadata, error) {
	var m *HostMetadata
	err := c.Retry.Do(ctx, func(ctx context.Context) (err error) {
		m, err = FetchHostMetadata(ctx, c.HTTP, c.Host)
		return err
	}, nil)
	return m, err
}

// Known returns the metadata if it was read (from the host, else from the store),
// without reading it.
func (c *HostMetadataCache) Known() *HostMetadata {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m != nil {
		return c.m
	}
	return c.stored
}
