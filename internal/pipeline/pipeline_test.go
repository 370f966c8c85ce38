package pipeline

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

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
		p := New(Config{Workspace: tc.host, Timeout: 10 * time.Second}, Options{HTTP: http.DefaultClient, Source: src})
		exp := time.Now().Add(35 * time.Second)
		p.ws.Set(&oauth2.Token{AccessToken: "old", Expiry: exp}, exp) // just got, 35 s left
		got, _, err := p.ws.Get(context.Background())
		p.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		if refreshed := fetches.Load() == 1 && got.AccessToken == "fresh"; refreshed != tc.refresh {
			t.Fatalf("%s: a token with 35 s left: got %q after %d fetches, want refreshed %v", tc.host, got.AccessToken, fetches.Load(), tc.refresh)
		}
	}
}
