package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// Discovery finds and caches a workspace's OIDC endpoints from
// <workspace>/oidc/.well-known/oauth-authorization-server. Overrides, when set, are
// used as they are and skip the lookup.
type Discovery struct {
	HTTP      *http.Client
	Workspace string          // https://host
	Override  oauth2.Endpoint // OAuthAuthorizationURL (AuthURL) / OAuthAccessTokenURL (TokenURL)
	Retry     Retry
	// Metadata, when set, is consulted when the workspace has no discovery document
	// at /oidc: a unified or account host names where OIDC lives in its metadata.
	Metadata *HostMetadataCache

	mu  sync.Mutex
	got *oauth2.Endpoint
}

// Endpoints returns the OIDC authorization and token endpoints, looking them up once.
func (d *Discovery) Endpoints(ctx context.Context) (oauth2.Endpoint, error) {
	if d.Override.AuthURL != "" && d.Override.TokenURL != "" {
		return d.Override, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.got == nil {
		// Only answers are kept: endpoints of a discovery document, or the defaults
		// the host's answers lead to. A failure is the caller's error and the next
		// call asks again.
		ep, err := d.discover(ctx)
		if err != nil {
			return oauth2.Endpoint{}, err
		}
		d.got = &ep
	}
	ep := *d.got
	if d.Override.AuthURL != "" {
		ep.AuthURL = d.Override.AuthURL
	}
	if d.Override.TokenURL != "" {
		ep.TokenURL = d.Override.TokenURL
	}
	return ep, nil
}

// discover finds the endpoints: the workspace's discovery document; when the
// workspace answers it has none (404), where the host's metadata says OIDC lives
// (unified and account hosts), else the documented defaults. Transient failures
// are retried within ctx.
func (d *Discovery) discover(ctx context.Context) (oauth2.Endpoint, error) {
	ep, err := d.fetchRetried(ctx, strings.TrimRight(d.Workspace, "/")+"/oidc/.well-known/oauth-authorization-server")
	if err == nil || !notFound(err) {
		return ep, err
	}
	ep = oauth2.Endpoint{AuthURL: d.Workspace + "/oidc/v1/authorize", TokenURL: d.Workspace + "/oidc/v1/token"}
	if d.Metadata == nil {
		return ep, nil
	}
	// The host's metadata says where OIDC lives: the host's own answer (never one
	// read back from the store), and only on the workspace's own origin.
	m, merr := d.Metadata.GetFromHost(ctx)
	switch {
	case merr != nil && notFound(merr):
		return ep, nil // a host without metadata: the defaults
	case merr != nil:
		return oauth2.Endpoint{}, merr
	case m.OIDCRoot() == "":
		return ep, nil
	}
	root := m.OIDCRoot()
	if !SameOrigin(root, d.Workspace) {
		return oauth2.Endpoint{}, &TokenError{Op: "discovery", Code: "invalid_response",
			Description: "the host metadata's oidc_endpoint is not on the workspace's origin (" + originOf(d.Workspace) + "); set OAuthAccessTokenURL and OAuthAuthorizationURL if OIDC lives elsewhere"}
	}
	got, ferr := d.fetchRetried(ctx, root+"/.well-known/oauth-authorization-server")
	switch {
	case ferr == nil:
		return got, nil
	case notFound(ferr):
		return oauth2.Endpoint{AuthURL: root + "/v1/authorize", TokenURL: root + "/v1/token"}, nil
	}
	return oauth2.Endpoint{}, ferr
}

// fetchRetried is fetchAt with the transient failures retried.
func (d *Discovery) fetchRetried(ctx context.Context, u string) (ep oauth2.Endpoint, err error) {
	err = d.Retry.Do(ctx, func(ctx context.Context) error {
		ep, err = d.fetchAt(ctx, u)
		return err
	}, nil)
	return ep, err
}

// notFound reports whether err is an answer 404: the thing asked for does not exist.
func notFound(err error) bool {
	var te *TokenError
	return asTokenError(err, &te) && te.StatusCode == http.StatusNotFound
}

func (d *Discovery) fetchAt(ctx context.Context, u string) (oauth2.Endpoint, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return oauth2.Endpoint{}, &TokenError{Op: "discovery", Err: err}
	}
	resp, err := httpx.Client(d.HTTP).Do(req)
	if err != nil {
		return oauth2.Endpoint{}, &TokenError{Op: "discovery", Err: httpx.RedactURLError(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return oauth2.Endpoint{}, &TokenError{Op: "discovery", StatusCode: resp.StatusCode, wait: parseRetryAfter(resp.Header)}
	}
	var doc struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.TokenEndpoint == "" {
		return oauth2.Endpoint{}, &TokenError{Op: "discovery", StatusCode: resp.StatusCode, Code: "invalid_response", Description: "the discovery document has no token_endpoint"}
	}
	for _, u := range []struct{ name, url string }{{"authorization_endpoint", doc.AuthorizationEndpoint}, {"token_endpoint", doc.TokenEndpoint}} {
		if u.url != "" && !SecureURL(u.url) {
			return oauth2.Endpoint{}, &TokenError{Op: "discovery", StatusCode: resp.StatusCode, Code: "invalid_response",
				Description: "the discovery document's " + u.name + " is not an https URL (http is allowed for loopback hosts only)"}
		}
	}
	return oauth2.Endpoint{AuthURL: doc.AuthorizationEndpoint, TokenURL: doc.TokenEndpoint}, nil
}

// SameOrigin reports whether the URLs a and b have the same scheme, host and port
// (case-insensitive host; a default port counts as given).
func SameOrigin(a, b string) bool {
	oa, ob := originOf(a), originOf(b)
	return oa != "" && oa == ob
}

// originOf is raw's scheme://host:port, lower-cased, with the scheme's default
// port filled in; "" when raw is not an absolute http(s) URL.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return u.Scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// SecureURL reports whether raw is an https URL, or an http URL of a loopback host
// (local emulators).
func SecureURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return httpx.IsLoopbackHost(u.Hostname())
	}
	return false
}

func asTokenError(err error, te **TokenError) bool {
	t, ok := err.(*TokenError)
	if ok {
		*te = t
	}
	return ok
}
