package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"
)

// DatabaseCredential is a Lakebase database credential: the Postgres password.
type DatabaseCredential struct {
	Token  string
	Expiry time.Time
}

// String redacts the credential.
func (c DatabaseCredential) String() string {
	return "oauth.DatabaseCredential{expiry: " + c.Expiry.Format(time.RFC3339) + "}"
}

// Format redacts the credential for every fmt verb.
func (c DatabaseCredential) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// API calls a workspace's Lakebase and SCIM REST APIs with a workspace token.
type API struct {
	HTTP      *http.Client
	Workspace string
	Retry     Retry
	OnRetry   func(op string, attempt int, wait time.Duration, err error)
}

func (a *API) call(ctx context.Context, op, method, path, token string, in, out any) error {
	return a.Retry.Do(ctx, func(ctx context.Context) error {
		return a.do(ctx, op, method, path, token, in, out)
	}, func(attempt int, wait time.Duration, err error) {
		if a.OnRetry != nil {
			a.OnRetry(op, attempt, wait, err)
		}
	})
}

func (a *API) do(ctx context.Context, op, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.Workspace, "/")+path, body)
	if err != nil {
		return &APIError{Op: op, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient(a.HTTP).Do(req)
	if err != nil {
		return &APIError{Op: op, Err: redactURLError(err)}
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
		return &APIError{Op: op, StatusCode: resp.StatusCode, ErrorCode: e.ErrorCode, Message: e.Message, wait: parseRetryAfter(resp.Header)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return &APIError{Op: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("malformed answer: %w", err)}
		}
	}
	return nil
}

// ErrResourceName is matched by an error about a resource name (a project, branch,
// endpoint, operation or instance) that breaks the service's rules; such a name is
// never sent.
var ErrResourceName = errors.New("oauth: malformed resource name")

var (
	// resourceID is the service's rule for project, branch and endpoint ids: 1 to 63
	// lowercase letters, digits and hyphens, starting with a letter.
	resourceID = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// Operation ids are the service's own; only safe characters are accepted.
	operationID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	// Provisioned instance names: letters, digits and hyphens.
	instanceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)
)

// ValidResourceID reports whether id follows the service's rule for project, branch
// and endpoint ids.
func ValidResourceID(id string) bool { return resourceID.MatchString(id) }

// ValidInstanceName reports whether name can be a Provisioned instance's name.
func ValidInstanceName(name string) bool { return instanceName.MatchString(name) }

// collections are the resource kinds of the postgres API, and what may follow each.
var collections = map[string]map[string]bool{
	"":          {"projects": true},
	"projects":  {"branches": true, "operations": true},
	"branches":  {"endpoints": true, "operations": true, "roles": true, "databases": true},
	"endpoints": {"operations": true},
	"roles":     {"operations": true},
	"databases": {"operations": true},
}

// ResourcePath checks a resource name of the postgres API (projects/<p>,
// projects/<p>/branches/<b>, .../endpoints/<e>, .../operations/<o>, ...) against the
// service's rules and returns it as a URL path below /api/2.0/postgres/, every
// segment escaped. kinds, when given, are the kinds the name may be of (the last
// collection: "branches", "endpoints", ...).
func ResourcePath(name string, kinds ...string) (string, error) {
	parts := strings.Split(name, "/")
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q %s", ErrResourceName, name, why)
	}
	if len(parts) < 2 || len(parts)%2 != 0 {
		return bad("is not a resource name (projects/<project>[/branches/<branch>[/endpoints/<endpoint>]])")
	}
	prev := ""
	escaped := make([]string, len(parts))
	for i := 0; i < len(parts); i += 2 {
		kind, id := parts[i], parts[i+1]
		if !collections[prev][kind] {
			return bad("has " + strconv.Quote(kind) + " where it cannot be")
		}
		ok := resourceID.MatchString(id)
		if kind == "operations" {
			ok = operationID.MatchString(id)
		}
		if !ok {
			return bad("has an id that breaks the service's rule (1-63 lowercase letters, digits and hyphens, starting with a letter)")
		}
		escaped[i], escaped[i+1] = kind, url.PathEscape(id)
		prev = kind
	}
	if len(kinds) > 0 && !slices.Contains(kinds, prev) {
		return bad("is not a resource of kind " + strings.Join(kinds, " or "))
	}
	return "/api/2.0/postgres/" + strings.Join(escaped, "/"), nil
}

// MintAutoscaling mints a credential for an Autoscaling endpoint
// (POST /api/2.0/postgres/credentials). ttl is clamped to 300s..3600s; 0 = 3600s.
func (a *API) MintAutoscaling(ctx context.Context, token, endpoint string, ttl time.Duration) (DatabaseCredential, error) {
	if ttl <= 0 {
		ttl = time.Hour
	}
	ttl = min(max(ttl, 300*time.Second), time.Hour)
	var out struct {
		Token      string    `json:"token"`
		ExpireTime LooseTime `json:"expire_time"`
	}
	if _, err := ResourcePath(endpoint, "endpoints"); err != nil {
		return DatabaseCredential{}, err
	}
	in := map[string]string{"endpoint": endpoint, "ttl": fmt.Sprintf("%ds", int(ttl/time.Second))}
	if err := a.call(ctx, "mint Autoscaling credential", http.MethodPost, "/api/2.0/postgres/credentials", token, in, &out); err != nil {
		return DatabaseCredential{}, err
	}
	if out.Token == "" {
		return DatabaseCredential{}, &APIError{Op: "mint Autoscaling credential", StatusCode: 200, Err: fmt.Errorf("the answer has no token")}
	}
	return DatabaseCredential{Token: out.Token, Expiry: out.ExpireTime.OrDefault(time.Now())}, nil
}

// MintProvisioned mints a credential for a Provisioned instance
// (POST /api/2.0/database/credentials) with a fresh request_id.
func (a *API) MintProvisioned(ctx context.Context, token, instance string) (DatabaseCredential, error) {
	var out struct {
		Token          string    `json:"token"`
		ExpirationTime LooseTime `json:"expiration_time"`
	}
	if !instanceName.MatchString(instance) {
		return DatabaseCredential{}, fmt.Errorf("%w: instance name %q (letters, digits and hyphens)", ErrResourceName, instance)
	}
	in := map[string]any{"request_id": uuid.NewString(), "instance_names": []string{instance}}
	if err := a.call(ctx, "mint Provisioned credential", http.MethodPost, "/api/2.0/database/credentials", token, in, &out); err != nil {
		return DatabaseCredential{}, err
	}
	if out.Token == "" {
		return DatabaseCredential{}, &APIError{Op: "mint Provisioned credential", StatusCode: 200, Err: fmt.Errorf("the answer has no token")}
	}
	return DatabaseCredential{Token: out.Token, Expiry: out.ExpirationTime.OrDefault(time.Now())}, nil
}

// LooseTime reads an expiry the way the service may write it: RFC 3339 with or
// without a fraction, or a number of seconds or milliseconds since the epoch (as a
// JSON number or string). Absent or unreadable, it is zero.
type LooseTime struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler; it never fails, so an odd expiry
// cannot make a credential unusable (OrDefault then applies).
func (t *LooseTime) UnmarshalJSON(b []byte) error {
	t.Time = ParseLooseTime(strings.Trim(string(b), `"`))
	return nil
}

// ParseLooseTime parses what LooseTime accepts; zero when it cannot.
func ParseLooseTime(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" || v == "null" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if tm, err := time.Parse(layout, v); err == nil {
			return tm
		}
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
		if f > 1e12 { // milliseconds (a seconds value this large is past year 33000)
			return time.UnixMilli(int64(f))
		}
		return time.Unix(int64(f), 0)
	}
	return time.Time{}
}

// OrDefault is the time, or now plus DefaultLifetime when it is zero: an answer with
// no expiry is given a short life, never "forever".
func (t LooseTime) OrDefault(now time.Time) time.Time {
	if t.IsZero() {
		return now.Add(DefaultLifetime)
	}
	return t.Time
}

// Instance is a Provisioned database instance.
type Instance struct {
	Name         string `json:"name"`
	State        string `json:"state"`
	ReadWriteDNS string `json:"read_write_dns"`
	ReadOnlyDNS  string `json:"read_only_dns"`
}

// GetInstance looks up a Provisioned instance.
func (a *API) GetInstance(ctx context.Context, token, name string) (Instance, error) {
	var inst Instance
	if !instanceName.MatchString(name) {
		return inst, fmt.Errorf("%w: instance name %q (letters, digits and hyphens)", ErrResourceName, name)
	}
	err := a.call(ctx, "look up instance "+name, http.MethodGet, "/api/2.0/database/instances/"+url.PathEscape(name), token, nil, &inst)
	return inst, err
}

// ListInstances lists the Provisioned instances (following every page).
func (a *API) ListInstances(ctx context.Context, token string) ([]Instance, error) {
	var all []Instance
	err := a.listAll(ctx, "list instances", "/api/2.0/database/instances", token, func(page json.RawMessage) error {
		var out struct {
			Instances []Instance `json:"database_instances"`
		}
		err := json.Unmarshal(page, &out)
		all = append(all, out.Instances...)
		return err
	})
	return all, err
}

// maxPages bounds a listing, against a service that never stops answering a next page.
const maxPages = 10000

// listAll calls a list API page by page (page_token, next_page_token) and hands
// each page's body to add.
func (a *API) listAll(ctx context.Context, op, path, token string, add func(json.RawMessage) error) error {
	pageToken := ""
	for range maxPages {
		p := path
		if pageToken != "" {
			p += "?page_token=" + url.QueryEscape(pageToken)
		}
		var raw json.RawMessage
		if err := a.call(ctx, op, http.MethodGet, p, token, nil, &raw); err != nil {
			return err
		}
		if err := add(raw); err != nil {
			return &APIError{Op: op, StatusCode: 200, Err: fmt.Errorf("malformed answer: %w", err)}
		}
		var next struct {
			NextPageToken string `json:"next_page_token"`
		}
		json.Unmarshal(raw, &next)
		if next.NextPageToken == "" || next.NextPageToken == pageToken {
			return nil
		}
		pageToken = next.NextPageToken
	}
	return &APIError{Op: op, StatusCode: 200, Err: fmt.Errorf("more than %d pages", maxPages)}
}

// EndpointInfo is an Autoscaling endpoint.
type EndpointInfo struct {
	Name   string `json:"name"`
	Status struct {
		CurrentState string `json:"current_state"`
		EndpointType string `json:"endpoint_type"`
		Hosts        struct {
			Host         string `json:"host"`
			ReadOnlyHost string `json:"read_only_host"`
		} `json:"hosts"`
	} `json:"status"`
	Spec struct {
		EndpointType string `json:"endpoint_type"`
	} `json:"spec"`
}

// Type is the endpoint's type (ENDPOINT_TYPE_READ_WRITE or ENDPOINT_TYPE_READ_ONLY),
// from its status, else its spec.
func (e EndpointInfo) Type() string {
	if e.Status.EndpointType != "" {
		return e.Status.EndpointType
	}
	return e.Spec.EndpointType
}

// BranchInfo is an Autoscaling branch.
type BranchInfo struct {
	Name             string `json:"name"`
	ExpireTime       string `json:"expire_time"`
	Default          bool   `json:"default"`
	EffectiveDefault bool   `json:"effective_default"`
	Status           struct {
		Default      bool   `json:"default"`
		CurrentState string `json:"current_state"`
		IsProtected  bool   `json:"is_protected"`
	} `json:"status"`
	Spec struct {
		IsProtected bool `json:"is_protected"`
	} `json:"spec"`
}

// Protected reports whether the branch is protected from deletion
// (status.is_protected, or spec.is_protected).
func (b BranchInfo) Protected() bool { return b.Status.IsProtected || b.Spec.IsProtected }

// IsDefault reports whether the branch is its project's default branch (the field
// has been at the top level and under status in different API versions).
func (b BranchInfo) IsDefault() bool { return b.Default || b.EffectiveDefault || b.Status.Default }

// ListBranches lists a project's branches (every page); project is projects/<id>.
func (a *API) ListBranches(ctx context.Context, token, project string) ([]BranchInfo, error) {
	var all []BranchInfo
	path, err := ResourcePath(project, "projects")
	if err != nil {
		return nil, err
	}
	err = a.listAll(ctx, "list branches of "+project, path+"/branches", token, func(page json.RawMessage) error {
		var out struct {
			Branches []BranchInfo `json:"branches"`
		}
		err := json.Unmarshal(page, &out)
		all = append(all, out.Branches...)
		return err
	})
	return all, err
}

// ListBranchEndpoints lists a branch's endpoints (every page); branch is
// projects/<p>/branches/<b>.
func (a *API) ListBranchEndpoints(ctx context.Context, token, branch string) ([]EndpointInfo, error) {
	var all []EndpointInfo
	path, err := ResourcePath(branch, "branches")
	if err != nil {
		return nil, err
	}
	err = a.listAll(ctx, "list endpoints of "+branch, path+"/endpoints", token, func(page json.RawMessage) error {
		var out struct {
			Endpoints []EndpointInfo `json:"endpoints"`
		}
		err := json.Unmarshal(page, &out)
		all = append(all, out.Endpoints...)
		return err
	})
	return all, err
}

// GetEndpoint looks up an Autoscaling endpoint by path.
func (a *API) GetEndpoint(ctx context.Context, token, path string) (EndpointInfo, error) {
	var ep EndpointInfo
	p, err := ResourcePath(path, "endpoints")
	if err != nil {
		return ep, err
	}
	err = a.call(ctx, "look up endpoint "+path, http.MethodGet, p, token, nil, &ep)
	return ep, err
}

// ListEndpoints lists every Autoscaling endpoint of every project and branch,
// following every page of each listing.
func (a *API) ListEndpoints(ctx context.Context, token string) ([]EndpointInfo, error) {
	type named struct {
		Name string `json:"name"`
	}
	names := func(op, path, key string) ([]string, error) {
		var out []string
		err := a.listAll(ctx, op, path, token, func(page json.RawMessage) error {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(page, &m); err != nil {
				return err
			}
			var items []named
			if raw, ok := m[key]; ok {
				if err := json.Unmarshal(raw, &items); err != nil {
					return err
				}
			}
			for _, it := range items {
				out = append(out, it.Name)
			}
			return nil
		})
		return out, err
	}
	projects, err := names("list projects", "/api/2.0/postgres/projects", "projects")
	if err != nil {
		return nil, err
	}
	var all []EndpointInfo
	for _, p := range projects {
		pp, err := ResourcePath(p, "projects")
		if err != nil {
			continue // a name the service should not have given: never followed
		}
		branches, err := names("list branches", pp+"/branches", "branches")
		if err != nil {
			return nil, err
		}
		for _, b := range branches {
			bp, err := ResourcePath(b, "branches")
			if err != nil {
				continue
			}
			err = a.listAll(ctx, "list endpoints", bp+"/endpoints", token, func(page json.RawMessage) error {
				var eps struct {
					Endpoints []EndpointInfo `json:"endpoints"`
				}
				err := json.Unmarshal(page, &eps)
				all = append(all, eps.Endpoints...)
				return err
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return all, nil
}

// Me returns the SCIM userName of the token's identity: a user's e-mail, or a
// service principal's application id.
func (a *API) Me(ctx context.Context, token string) (string, error) {
	var out struct {
		UserName string `json:"userName"`
	}
	if err := a.call(ctx, "SCIM Me", http.MethodGet, "/api/2.0/preview/scim/v2/Me", token, nil, &out); err != nil {
		return "", err
	}
	if out.UserName == "" {
		return "", &APIError{Op: "SCIM Me", StatusCode: 200, Err: fmt.Errorf("the answer has no userName")}
	}
	return out.UserName, nil
}

// Operation is a long-running operation of the postgres API.
type Operation struct {
	Name  string          `json:"name"`
	Done  bool            `json:"done"`
	Error json.RawMessage `json:"error,omitempty"`
}

// Failed returns the operation's error, if it ended with one.
func (o Operation) Failed() error {
	if len(o.Error) == 0 || string(o.Error) == "null" {
		return nil
	}
	var e struct {
		Message string `json:"message"`
	}
	json.Unmarshal(o.Error, &e)
	return &APIError{Op: "operation " + o.Name, StatusCode: 200, Message: e.Message, ErrorCode: "OPERATION_FAILED"}
}

// CreateBranch starts making branch id of project (projects/<p>) from source (a
// branch path; "" for the project's default branch), living ttl (0: until deleted).
func (a *API) CreateBranch(ctx context.Context, token, project, id, source string, ttl time.Duration) (Operation, error) {
	spec := map[string]any{}
	if source != "" {
		spec["source_branch"] = source
	}
	if ttl > 0 {
		spec["ttl"] = fmt.Sprintf("%ds", int(ttl/time.Second))
	}
	var op Operation
	path, err := ResourcePath(project, "projects")
	if err != nil {
		return op, err
	}
	if !resourceID.MatchString(id) {
		return op, fmt.Errorf("%w: branch id %q breaks the service's rule (1-63 lowercase letters, digits and hyphens, starting with a letter)", ErrResourceName, id)
	}
	if source != "" {
		if _, err := ResourcePath(source, "branches"); err != nil {
			return op, err
		}
	}
	err = a.call(ctx, "create branch "+id, http.MethodPost, path+"/branches?branch_id="+url.QueryEscape(id), token, map[string]any{"spec": spec}, &op)
	return op, err
}

// GetOperation polls a long-running operation.
func (a *API) GetOperation(ctx context.Context, token, name string) (Operation, error) {
	var op Operation
	path, err := ResourcePath(name, "operations")
	if err != nil {
		return op, err
	}
	err = a.call(ctx, "get operation", http.MethodGet, path, token, nil, &op)
	return op, err
}

// GetBranch looks up a branch (projects/<p>/branches/<b>).
func (a *API) GetBranch(ctx context.Context, token, branch string) (BranchInfo, error) {
	var b BranchInfo
	path, err := ResourcePath(branch, "branches")
	if err != nil {
		return b, err
	}
	err = a.call(ctx, "look up branch "+branch, http.MethodGet, path, token, nil, &b)
	return b, err
}

// DeleteBranch deletes a branch (projects/<p>/branches/<b>). The answer is a
// long-running operation (done at once, or to wait for).
func (a *API) DeleteBranch(ctx context.Context, token, branch string) error {
	path, err := ResourcePath(branch, "branches")
	if err != nil {
		return err
	}
	return a.call(ctx, "delete branch "+branch, http.MethodDelete, path, token, nil, nil)
}

// CreateEndpoint starts making a read-write endpoint id on branch
// (projects/<p>/branches/<b>).
func (a *API) CreateEndpoint(ctx context.Context, token, branch, id string) (Operation, error) {
	var op Operation
	path, err := ResourcePath(branch, "branches")
	if err != nil {
		return op, err
	}
	if !resourceID.MatchString(id) {
		return op, fmt.Errorf("%w: endpoint id %q breaks the service's rule", ErrResourceName, id)
	}
	body := map[string]any{"spec": map[string]any{"endpoint_type": "ENDPOINT_TYPE_READ_WRITE"}}
	err = a.call(ctx, "create endpoint "+id, http.MethodPost, path+"/endpoints?endpoint_id="+url.QueryEscape(id), token, body, &op)
	return op, err
}

// Wait polls op until it is done (every 250 ms, or until ctx ends) and returns its
// failure, if any. ts gives the workspace token for each poll.
func (a *API) Wait(ctx context.Context, ts oauth2.TokenSource, op Operation) error {
	for !op.Done {
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %s: %w", op.Name, ctx.Err())
		case <-t.C:
		}
		tok, err := TokenContext(ctx, ts)
		if err != nil {
			return err
		}
		if op, err = a.GetOperation(ctx, tok.AccessToken, op.Name); err != nil {
			return err
		}
	}
	return op.Failed()
}
