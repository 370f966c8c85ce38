package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
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

// MintAutoscaling mints a credential for an Autoscaling endpoint
// (POST /api/2.0/postgres/credentials). ttl is clamped to 300s..3600s; 0 = 3600s.
func (a *API) MintAutoscaling(ctx context.Context, token, endpoint string, ttl time.Duration) (DatabaseCredential, error) {
	if ttl <= 0 {
		ttl = time.Hour
	}
	ttl = min(max(ttl, 300*time.Second), time.Hour)
	var out struct {
		Token      string    `json:"token"`
		ExpireTime time.Time `json:"expire_time"`
	}
	in := map[string]string{"endpoint": endpoint, "ttl": fmt.Sprintf("%ds", int(ttl/time.Second))}
	if err := a.call(ctx, "mint Autoscaling credential", http.MethodPost, "/api/2.0/postgres/credentials", token, in, &out); err != nil {
		return DatabaseCredential{}, err
	}
	if out.Token == "" {
		return DatabaseCredential{}, &APIError{Op: "mint Autoscaling credential", StatusCode: 200, Err: fmt.Errorf("the answer has no token")}
	}
	return DatabaseCredential{Token: out.Token, Expiry: out.ExpireTime}, nil
}

// MintProvisioned mints a credential for a Provisioned instance
// (POST /api/2.0/database/credentials) with a fresh request_id.
func (a *API) MintProvisioned(ctx context.Context, token, instance string) (DatabaseCredential, error) {
	var out struct {
		Token          string    `json:"token"`
		ExpirationTime time.Time `json:"expiration_time"`
	}
	in := map[string]any{"request_id": uuid.NewString(), "instance_names": []string{instance}}
	if err := a.call(ctx, "mint Provisioned credential", http.MethodPost, "/api/2.0/database/credentials", token, in, &out); err != nil {
		return DatabaseCredential{}, err
	}
	if out.Token == "" {
		return DatabaseCredential{}, &APIError{Op: "mint Provisioned credential", StatusCode: 200, Err: fmt.Errorf("the answer has no token")}
	}
	return DatabaseCredential{Token: out.Token, Expiry: out.ExpirationTime}, nil
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
	err := a.call(ctx, "look up instance "+name, http.MethodGet, "/api/2.0/database/instances/"+url.PathEscape(name), token, nil, &inst)
	return inst, err
}

// ListInstances lists the Provisioned instances (following pages).
func (a *API) ListInstances(ctx context.Context, token string) ([]Instance, error) {
	var all []Instance
	pageToken := ""
	for {
		var out struct {
			Instances     []Instance `json:"database_instances"`
			NextPageToken string     `json:"next_page_token"`
		}
		path := "/api/2.0/database/instances"
		if pageToken != "" {
			path += "?page_token=" + url.QueryEscape(pageToken)
		}
		if err := a.call(ctx, "list instances", http.MethodGet, path, token, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Instances...)
		if out.NextPageToken == "" || len(out.Instances) == 0 {
			return all, nil
		}
		pageToken = out.NextPageToken
	}
}

// EndpointInfo is an Autoscaling endpoint.
type EndpointInfo struct {
	Name   string `json:"name"`
	Status struct {
		CurrentState string `json:"current_state"`
		Hosts        struct {
			Host         string `json:"host"`
			ReadOnlyHost string `json:"read_only_host"`
		} `json:"hosts"`
	} `json:"status"`
}

// GetEndpoint looks up an Autoscaling endpoint by path.
func (a *API) GetEndpoint(ctx context.Context, token, path string) (EndpointInfo, error) {
	var ep EndpointInfo
	err := a.call(ctx, "look up endpoint "+path, http.MethodGet, "/api/2.0/postgres/"+path, token, nil, &ep)
	return ep, err
}

// ListEndpoints lists every Autoscaling endpoint of every project and branch.
func (a *API) ListEndpoints(ctx context.Context, token string) ([]EndpointInfo, error) {
	type named struct {
		Name string `json:"name"`
	}
	var projects struct {
		Projects []named `json:"projects"`
	}
	if err := a.call(ctx, "list projects", http.MethodGet, "/api/2.0/postgres/projects", token, nil, &projects); err != nil {
		return nil, err
	}
	var all []EndpointInfo
	for _, p := range projects.Projects {
		var branches struct {
			Branches []named `json:"branches"`
		}
		if err := a.call(ctx, "list branches", http.MethodGet, "/api/2.0/postgres/"+p.Name+"/branches", token, nil, &branches); err != nil {
			return nil, err
		}
		for _, b := range branches.Branches {
			var eps struct {
				Endpoints []EndpointInfo `json:"endpoints"`
			}
			if err := a.call(ctx, "list endpoints", http.MethodGet, "/api/2.0/postgres/"+b.Name+"/endpoints", token, nil, &eps); err != nil {
				return nil, err
			}
			all = append(all, eps.Endpoints...)
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
