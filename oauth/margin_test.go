package oauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/settings"
)

// Azure Databricks refuses workspace tokens with 30 s or less left: a stored
// token with 35 s left (whatever its lifetime) is refreshed on an Azure host, not
// handed out; elsewhere the lifetime's margin (30 s for a short token) still uses it.
func TestSource_AzureTokenWith35sLeftIsRefreshedNotUsed(t *testing.T) {
	var refreshes atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		refreshes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"fresh","refresh_token":"r2","token_type":"Bearer","expires_in":3600}`))
	}))
	defer idp.Close()
	for i, tc := range []struct {
		workspace string
		refresh   bool
	}{
		{"https://adb-1234567890123456.7.azuredatabricks.net", true},
		{"adb-1234567890123456.7.azuredatabricks.net", true},
		{"https://adb-1.2.databricks.azure.cn", true},
		{"https://dbc-1234.cloud.databricks.com", false},
		{"https://azuredatabricks.net.example.com", false},
	} {
		src := &Source{Scheme: SchemePKCE, Mode: ModeRefresh, Workspace: tc.workspace, Scope: "all-apis offline_access",
			Client: &TokenClient{ClientID: "databricks-cli", Discovery: &Discovery{Workspace: idp.URL,
				Override: oauth2.Endpoint{AuthURL: idp.URL + "/authorize", TokenURL: idp.URL + "/token"}}},
			Store: settings.MemoryStore("azure-margin-" + string(rune('a'+i)))}
		// Stored just now with 35 s left: its lifetime says a 30 s margin.
		if err := src.Save(context.Background(), &oauth2.Token{AccessToken: "old", RefreshToken: "r1", Expiry: time.Now().Add(35 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		before := refreshes.Load()
		got, err := src.TokenContext(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", tc.workspace, err)
		}
		refreshed := refreshes.Load() > before
		if refreshed != tc.refresh || (got.AccessToken == "fresh") != tc.refresh {
			t.Fatalf("%s: a token with 35 s left: refreshed %v (got %q), want refreshed %v", tc.workspace, refreshed, got.AccessToken, tc.refresh)
		}
	}
}

func TestHostTokenMargin_AzureHostsOnly(t *testing.T) {
	for host, want := range map[string]time.Duration{
		"https://adb-1.2.azuredatabricks.net/":     AzureTokenMargin,
		"ADB-1.2.AzureDatabricks.NET":              AzureTokenMargin,
		"https://adb-1.2.azuredatabricks.net.:443": AzureTokenMargin,
		"https://x.databricks.azure.us":            AzureTokenMargin,
		"https://dbc-1.cloud.databricks.com":       0,
		"https://evilazuredatabricks.net":          0,
		"http://127.0.0.1:8080":                    0,
		"":                                         0,
	} {
		if got := HostTokenMargin(host); got != want {
			t.Errorf("HostTokenMargin(%q) = %v, want %v", host, got, want)
		}
	}
}
