package lakebasetest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase/internal/webdriver"
)

// TestConsentPage_ClickedInHeadlessChromium opens the authorize URL in a real browser,
// clicks Approve, and checks that the browser lands on the redirect URI with a code.
func TestConsentPage_ClickedInHeadlessChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	got := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query():
		default:
		}
		w.Write([]byte("<html><body><p id=done>done</p></body></html>"))
	}))
	defer cb.Close()

	b := webdriver.StartForTest(ctx, t)

	_, challenge := pkcePair()
	q := url.Values{"client_id": {"databricks-cli"}, "redirect_uri": {cb.URL + "/cb"}, "response_type": {"code"},
		"state": {"browser-state"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"all-apis offline_access"}}
	if err := b.Navigate(ctx, srv.URL+"/oidc/v1/authorize?"+q.Encode()); err != nil {
		t.Fatal(err)
	}
	if who, err := b.Text(ctx, "#identity"); err != nil || who != srv.User.Email {
		t.Fatalf("consent page shows identity %q (%v)", who, err)
	}
	if err := b.Click(ctx, "#approve"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v.Get("code") == "" || v.Get("state") != "browser-state" {
			t.Fatalf("redirect query = %v", v)
		}
	case <-ctx.Done():
		t.Fatal("the browser never reached the redirect URI")
	}
}
