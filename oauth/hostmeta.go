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

// HostMetadataCache reads a host's metadata once, when first needed, and keeps it
// (a failure too, until Reset): the OIDC discovery fallback and the workspace id of
// unified hosts share it.
//
// Metadata read back from the store (Load) is kept apart from metadata the host
// answered in this process: only the workspace id is taken from the store (it
// names a workspace on the same host; it sends nothing anywhere else), while
// GetFromHost, which the OIDC discovery uses to find where a client secret or a
// grant goes, answers only with what the host itself said.
type HostMetadataCache struct {
	HTTP *http.Client
	Host string
	// Load and Save, when set, keep the metadata beyond the process (the settings
	// store): Load is asked first; what is read from the host is given to Save.
	Load func(ctx context.Context) *HostMetadata
	Save func(ctx context.Context, m *HostMetadata)

	mu     sync.Mutex
	done   bool
	saved  bool          // given to Save
	m      *HostMetadata // read from the host in this process
	err    error
	stored *HostMetadata // read back by Load: never decides where a request goes
	loaded bool          // Load was asked
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
	if c.m != nil || c.done {
		return c.m, c.err
	}
	if !c.loaded && c.Load != nil {
		c.stored, c.loaded = c.Load(ctx), true
	}
	if c.stored != nil {
		return c.stored, nil
	}
	c.fetch(ctx)
	if c.err == nil && c.Save != nil {
		c.Save(ctx, c.m)
		c.saved = true
	}
	return c.m, c.err
}

// GetFromHost returns the metadata the host answered, reading it from the host on
// the first call; it never answers with what Load returned. Use it for anything
// that decides where a request goes (the OIDC endpoint). It does not call Load or
// Save: its callers may hold the store's lock (the OIDC discovery of a token
// fetch), which Load and Save take; Flush saves what it read.
func (c *HostMetadataCache) GetFromHost(ctx context.Context) (*HostMetadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.fetch(ctx)
	}
	return c.m, c.err
}

func (c *HostMetadataCache) fetch(ctx context.Context) {
	c.m, c.err = FetchHostMetadata(ctx, c.HTTP, c.Host)
	c.done = ctx.Err() == nil
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
