package oauth_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
)

// A caller's deadline holds while another caller's token fetch is slow: the second
// caller waits on the store's lock only as long as its context allows (memory and
// file stores alike).
func TestSource_CallerDeadlineHoldsBehindASlowFetch(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true})
	tok := personToken(t, emu)
	stores := map[string]settings.Store{
		"memory": settings.MemoryStore(t.Name()),
		"file":   &settings.FileStore{Path: filepath.Join(t.TempDir(), "settings.json")},
	}
	newSource := func(st settings.Store) *oauth.Source {
		return &oauth.Source{Scheme: oauth.SchemePKCE, Mode: oauth.ModeRefresh, Workspace: emu.URL, Scope: "all-apis offline_access",
			Client: &oauth.TokenClient{ClientID: "databricks-cli", Discovery: &oauth.Discovery{Workspace: emu.URL}}, Store: st}
	}
	for _, st := range stores {
		if err := newSource(st).Save(context.Background(), &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	emu.SetRefreshRotation(false) // both stores hold the same refresh token
	emu.SetLatency(lakebasetest.EPToken, 5*time.Second)
	defer emu.SetLatency(lakebasetest.EPToken, 0)
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			before := emu.Count(lakebasetest.EPToken) // counted as a request arrives, before its latency
			slow := make(chan error, 1)
			go func() { _, err := newSource(st).TokenContext(context.Background()); slow <- err }()
			// Wait until the slow refresh holds the store (its request is at the emulator).
			for emu.Count(lakebasetest.EPToken) == before {
				time.Sleep(5 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := newSource(st).TokenContext(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the second caller: %v, want its deadline", err)
			}
			select {
			case err := <-slow:
				t.Fatalf("the slow fetch ended (%v) before the second caller returned: the test proves nothing", err)
			default:
			}
			if err := <-slow; err != nil {
				t.Fatalf("the slow fetch: %v", err)
			}
		})
	}
}
