package lakebase

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/workspace"
)

// Endpoint and instance states: ACTIVE and IDLE (and an instance's AVAILABLE or
// STARTING) connect, an IDLE one waking on connect; the rest are clear errors.
func TestTarget_StatesThatCannotConnectSayWhy(t *testing.T) {
	for _, ok := range []string{"", "ACTIVE", "IDLE", "AVAILABLE", "STARTING", "UPDATING", "FAILING_OVER"} {
		if err := (&target{endpoint: "projects/p/branches/b/endpoints/e", state: ok}).checkState(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for state, want := range map[string]string{
		"INIT":     "ACTIVE or IDLE",
		"DEGRADED": "DEGRADED",
		"STOPPED":  "start it",
		"DELETING": "DELETING and cannot take connections",
	} {
		err := (&target{endpoint: "projects/p/branches/b/endpoints/e", state: state}).checkState()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "projects/p/branches/b/endpoints/e") {
			t.Errorf("%s: %v", state, err)
		}
	}
}

// tokenFunc is an oauth2.TokenSource from a function.
type tokenFunc func() (*oauth2.Token, error)

func (f tokenFunc) Token() (*oauth2.Token, error) { return f() }

// Azure Databricks refuses workspace tokens with 30 s or less left: the pipeline's
// cache refreshes a held token with 35 s left on an Azure host (whatever its
// lifetime) rather than use it; on another host that token is still used.
func TestPipeline_AzureWorkspaceTokenWith35sLeftIsRefreshedNotUsed(t *testing.T) {
	for _, tc := range []struct {
		host    string
		refresh bool
	}{
		{"adb-1234567890123456.7.azuredatabricks.net", true},
		{"dbc-1234.cloud.databricks.com", false},
	} {
		var fetches atomic.Int32
		src := tokenFunc(func() (*oauth2.Token, error) {
			fetches.Add(1)
			return &oauth2.Token{AccessToken: "fresh", Expiry: time.Now().Add(time.Hour)}, nil
		})
		cfg := &Config{DatabricksInstance: tc.host, AuthScheme: AuthOAuthClient, Timeout: 10 * time.Second}
		p := newTokenPipeline(cfg, slog.New(slog.DiscardHandler), http.DefaultClient, workspace.Options{}, src, nil)
		exp := time.Now().Add(35 * time.Second)
		p.ws.Set(&oauth2.Token{AccessToken: "old", Expiry: exp}, exp) // just got, 35 s left
		got, _, err := p.ws.Get(context.Background())
		p.close()
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		if refreshed := fetches.Load() == 1 && got.AccessToken == "fresh"; refreshed != tc.refresh {
			t.Fatalf("%s: a token with 35 s left: got %q after %d fetches, want refreshed %v", tc.host, got.AccessToken, fetches.Load(), tc.refresh)
		}
	}
}
