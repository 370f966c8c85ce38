package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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
	resp, err := httpClient(hc).Do(req)
	if err != nil {
		return nil, &TokenError{Op: "host metadata", Err: redactURLError(err)}
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
type HostMetadataCache struct {
	HTTP *http.Client
	Host string

	mu   sync.Mutex
	done bool
	m    *HostMetadata
	err  error
}

// Get returns the metadata, reading it on the first call.
func (c *HostMetadataCache) Get(ctx context.Context) (*HostMetadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.m, c.err = FetchHostMetadata(ctx, c.HTTP, c.Host)
		c.done = ctx.Err() == nil
	}
	return c.m, c.err
}

// Known returns the metadata if it was read, without reading it.
func (c *HostMetadataCache) Known() *HostMetadata {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}
