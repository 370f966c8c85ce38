package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
)

// fullStore is a FileStore on a disk that can fill up: while full, every update
// that would change the file fails as a write to a full disk does.
type fullStore struct {
	*settings.FileStore
	full atomic.Bool
}

func (f *fullStore) Update(ctx context.Context, fn func(*settings.Settings) (bool, error)) error {
	if !f.full.Load() {
		return f.FileStore.Update(ctx, fn)
	}
	errFull := &settings.SettingsFileError{Path: f.Path, Msg: "cannot be written", Err: syscall.ENOSPC, Unwritable: true}
	err := f.FileStore.Update(ctx, func(s *settings.Settings) (bool, error) {
		before, _ := json.Marshal(s)
		if _, err := fn(s); err != nil {
			return false, err
		}
		if after, _ := json.Marshal(s); string(after) != string(before) {
			return false, errFull // nothing is written
		}
		return false, nil
	})
	return err
}

// A person's login, with a refresh token, from the emulator.
func personToken(t *testing.T, emu *lakebasetest.Server) *oauth2.Token {
	t.Helper()
	d := desktop(emu, "http://localhost:0/cb", func(u string) error {
		go func() {
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
			}
		}()
		return nil
	})
	tok, err := d.Run(context.Background())
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("login: %v", err)
	}
	return tok
}

// A refresh while the disk is full keeps the rotated refresh token in memory (it is
// the only one left: the old one is spent), goes on using it, warns, and writes it
// once the disk has room; the login is never lost to reuse detection.
func TestSource_RotatedTokenSurvivesAFullDisk(t *testing.T) {
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true, HTTPOnly: true, TokenLifetime: 20 * time.Second})
	// Tokens of 20 s are inside the 30 s margin at once: every TokenContext refreshes.
	tok := personToken(t, emu)
	store := &fullStore{FileStore: &settings.FileStore{Path: filepath.Join(t.TempDir(), "settings.json")}}
	var warnings atomic.Int32
	src := &oauth.Source{Scheme: oauth.SchemePKCE, Mode: oauth.ModeRefresh, Workspace: emu.URL, Scope: "all-apis offline_access",
		Client: &oauth.TokenClient{ClientID: "databricks-cli", Discovery: &oauth.Discovery{Workspace: emu.URL}},
		Store:  store, OnUnsaved: func(err error) {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("OnUnsaved: %v", err)
			}
			warnings.Add(1)
		}}
	if err := src.Save(context.Background(), &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	store.full.Store(true)
	before := emu.Count("token:refresh_token")
	for i := range 3 { // each call refreshes, rotating the refresh token
		if _, err := src.TokenContext(context.Background()); err != nil {
			t.Fatalf("refresh %d on a full disk: %v", i, err)
		}
	}
	if n := emu.Count("token:refresh_token") - before; n != 3 {
		t.Fatalf("%d refreshes on the full disk, want 3", n)
	}
	if warnings.Load() == 0 {
		t.Fatal("no warning about the unwritable store")
	}
	store.full.Store(false)
	if _, err := src.TokenContext(context.Background()); err != nil {
		t.Fatalf("after the disk has room: %v", err)
	}
	// The file now holds the newest refresh token: a new process refreshes with it.
	fresh := &oauth.Source{Scheme: oauth.SchemePKCE, Mode: oauth.ModeRefresh, Workspace: emu.URL, Scope: "all-apis offline_access",
		Client: &oauth.TokenClient{ClientID: "databricks-cli", Discovery: &oauth.Discovery{Workspace: emu.URL}},
		Store:  &settings.FileStore{Path: store.Path}}
	if _, err := fresh.TokenContext(context.Background()); err != nil {
		t.Fatalf("a new process after the full disk: %v", err)
	}
	data, _ := os.ReadFile(store.Path)
	if len(data) == 0 {
		t.Fatal("nothing was written")
	}
}
