package lakebase_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
)

// secretRecorder is an HTTP server that answers like a workspace that knows nothing
// (its discovery names its own token endpoint, everything else is 404) and keeps
// every request whole (headers and body), to look for secrets in them.
type secretRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newSecretRecorder(t *testing.T) *secretRecorder {
	r := &secretRecorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var b strings.Builder
		b.WriteString(req.Method + " " + req.URL.String() + "\n")
		req.Header.Write(&b)
		b.Write(body)
		r.mu.Lock()
		r.seen = append(r.seen, b.String())
		r.mu.Unlock()
		if strings.HasSuffix(req.URL.Path, "/.well-known/oauth-authorization-server") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"issuer":"`+r.URL+`/oidc","authorization_endpoint":"`+r.URL+`/oidc/v1/authorize","token_endpoint":"`+r.URL+`/oidc/v1/token"}`)
			return
		}
		http.NotFound(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// holding reports the requests that carry secret in any form a client sends it:
// as is, URL-encoded, or in an HTTP Basic header with client id.
func (r *secretRecorder) holding(secret, clientID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	forms := []string{secret, url.QueryEscape(secret),
		base64.StdEncoding.EncodeToString([]byte(clientID + ":" + secret)),
		base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(secret)))}
	var out []string
	for _, s := range r.seen {
		for _, f := range forms {
			if strings.Contains(s, f) {
				out = append(out, strings.SplitN(s, "\n", 2)[0])
				break
			}
		}
	}
	return out
}

func (r *secretRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// isolateEnv clears the variables a connection string may be filled from and
// points DATABRICKS_CONFIG_FILE at file.
func isolateEnv(t *testing.T, file string) {
	for _, v := range []string{"DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_PROFILE",
		"DATABRICKS_TOKEN", "DATABRICKS_WORKSPACE_ID", "LAKEBASE_ENDPOINT", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGAPPNAME",
		"DATABRICKS_OIDC_TOKEN_FILEPATH", "DATABRICKS_OIDC_TOKEN_ENV", "ARM_TENANT_ID"} {
		t.Setenv(v, "")
	}
	t.Setenv("DATABRICKS_CONFIG_FILE", file)
}

// A ~/.databrickscfg profile's secrets belong to the profile's host. A connection
// string (or DATABRICKS_HOST) that names another workspace must not take them there:
// neither the client secret nor the personal access token of the profile is sent to
// a host the profile does not name. A profile asked for by name is then an error
// naming Profile; with its own host the profile's secret is used as before.
func TestAttack30_AProfilesSecretsNeverGoToAnotherWorkspace(t *testing.T) {
	const (
		secretProfile = "[DEFAULT]\nhost = https://dbc-profile.cloud.databricks.com\nclient_id = profile-sp\nclient_secret = profile-secret-7f3a9\n"
		tokenProfile  = "[DEFAULT]\nhost = https://dbc-profile.cloud.databricks.com\ntoken = dapi-profile-token-7f3a9\n"
		namedProfile  = "[DEFAULT]\nhost = https://dbc-other.cloud.databricks.com\n[prod]\nhost = https://dbc-profile.cloud.databricks.com\nclient_id = profile-sp\nclient_secret = profile-secret-7f3a9\n"
	)
	for _, tc := range []struct {
		name, profile string
		env           map[string]string
		viaEnv        bool // the workspace comes from DATABRICKS_HOST, not the string
		wantErr       bool // a Profile error, before any request
	}{
		{name: "client secret", profile: secretProfile},
		{name: "token", profile: tokenProfile},
		{name: "workspace from DATABRICKS_HOST", profile: tokenProfile, viaEnv: true},
		{name: "named profile", profile: namedProfile, env: map[string]string{"DATABRICKS_CONFIG_PROFILE": "prod"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ini := filepath.Join(t.TempDir(), "databrickscfg")
			if err := os.WriteFile(ini, []byte(tc.profile), 0o600); err != nil {
				t.Fatal(err)
			}
			isolateEnv(t, ini)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			other := newSecretRecorder(t)
			dsn := "DatabricksInstance=" + other.URL + ";Endpoint=projects/p/branches/b/endpoints/e;Timeout=5"
			if tc.viaEnv {
				t.Setenv("DATABRICKS_HOST", other.URL)
				dsn = "Endpoint=projects/p/branches/b/endpoints/e;Timeout=5"
			}
			c, err := lakebase.NewConnector(dsn)
			if tc.wantErr {
				var ce *lakebase.ConfigError
				if !errors.As(err, &ce) || ce.Property != "Profile" {
					t.Fatalf("a named profile of another host: %v", err)
				}
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err = c.Login(ctx)
				cancel()
				c.Close()
			}
			for _, secret := range []string{"profile-secret-7f3a9", "dapi-profile-token-7f3a9"} {
				if got := other.holding(secret, "profile-sp"); len(got) != 0 {
					t.Fatalf("a secret of the profile for dbc-profile went to the workspace %s: %q", other.URL, got)
				}
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Fatalf("the error holds the profile's secret: %v", err)
				}
			}
		})
	}
	// The profile's own host (written another way) still gets the profile's secret.
	own := newSecretRecorder(t)
	ini := filepath.Join(t.TempDir(), "databrickscfg")
	if err := os.WriteFile(ini, []byte("[DEFAULT]\nhost = "+strings.ToUpper(own.URL)+"/\nclient_id = profile-sp\nclient_secret = profile-secret-7f3a9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	isolateEnv(t, ini)
	c, err := lakebase.NewConnector("DatabricksInstance=" + own.URL + ";Endpoint=projects/p/branches/b/endpoints/e;Timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Login(ctx)
	if got := own.holding("profile-secret-7f3a9", "profile-sp"); len(got) == 0 {
		t.Fatalf("the profile's own host never got its client secret (requests: %d): the check drops every profile", own.count())
	}
}
