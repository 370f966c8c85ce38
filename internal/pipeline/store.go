package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
	"github.com/lakebase-go/lakebase/workspace"
)

// What the pipeline keeps in the settings store, so the next process starts warm:
// credentials, host lookups, the user name and the host's metadata, each keyed by
// the login it belongs to. The store raises a login's reach (fewer requests); what
// is read back never decides where a secret goes (storedHostUsable, and the OIDC
// endpoints of oauth.HostMetadataCache).

// stores reports whether this pipeline keeps credentials and lookups in its store:
// a store is named (OAuthClient, OAuthPKCE) and InitiateOAuth lets the driver use it.
func (p *Pipeline) stores() bool {
	return p.stored != nil && !p.cfg.NoStore
}

// exclusive runs fn under the store's lock called name when the pipeline keeps
// things in a store, so one process of those sharing the store does the work;
// otherwise it just runs fn.
func (p *Pipeline) exclusive(ctx context.Context, name string, fn func() error) error {
	if !p.stores() {
		return fn()
	}
	return settings.Exclusive(ctx, p.stored.Store, name, fn)
}

// recall reads the store (when the pipeline keeps things there); a store that
// cannot be read only costs the requests it would have saved.
func (p *Pipeline) recall(ctx context.Context, fn func(*settings.Settings)) {
	if err := p.update(ctx, false, fn); err != nil {
		p.log.Debug("lakebase: the settings store could not be read for a warm start", slog.String("error", err.Error()))
	}
}

// remember writes to the store (when the pipeline keeps things there); a failure is
// logged, never fatal to the login.
func (p *Pipeline) remember(ctx context.Context, fn func(*settings.Settings)) {
	if err := p.update(ctx, true, fn); err != nil {
		p.log.Warn("lakebase: could not keep the credential in the settings store", slog.String("error", err.Error()))
	}
}

// update runs fn on the store, writing what it changed when write is set, and
// tells the observers.
func (p *Pipeline) update(ctx context.Context, write bool, fn func(*settings.Settings)) error {
	if !p.stores() {
		return nil
	}
	start, kind := time.Now(), EventStoreRead
	if write {
		kind = EventStoreWrite
	}
	err := p.stored.Store.Update(ctx, func(st *settings.Settings) (bool, error) { fn(st); return write, nil })
	p.emit(ctx, Event{Kind: kind, Start: start, Duration: time.Since(start)}, err)
	return err
}

// ofCurrentLogin reports whether something stored with login belongs to the login
// this pipeline uses: the stored one, with no new login material in the connection
// string. What came from another login (another person, perhaps) is never used.
func (p *Pipeline) ofCurrentLogin(st *settings.Settings, login string) bool {
	cur, ok := p.stored.Current(st)
	return ok && login != "" && login == cur
}

func dbName(endpoint, instance string) settings.Database {
	if endpoint != "" {
		return settings.EndpointDatabase(endpoint)
	}
	return settings.InstanceDatabase(instance)
}

// credentialKey keys a stored credential by everything it was minted for: the
// login (workspace, client, scheme, scope), the database, the user and the
// read-only choice; ok is false when the pipeline keeps nothing in a store.
func (p *Pipeline) credentialKey(endpoint, instance string) (settings.CredentialKey, bool) {
	if !p.stores() {
		return settings.CredentialKey{}, false
	}
	return settings.CredentialKey{Login: p.stored.Key(), Database: dbName(endpoint, instance), User: p.cfg.User, ReadOnly: p.cfg.ReadOnly,
		Claims: p.cfg.Claims.String()}, true
}

// lookupKey keys a stored host lookup: the workspace and the database (or the
// project and branch that name it).
func (p *Pipeline) lookupKey(t *target) settings.LookupKey {
	db := dbName(t.Endpoint, t.Instance)
	if p.cfg.Project != "" {
		db = settings.BranchDatabase(p.cfg.Project, p.cfg.Branch)
	}
	return settings.LookupKey{Workspace: p.cfg.Workspace, Database: db, ReadOnly: p.cfg.ReadOnly, Pooled: p.cfg.Pooled}
}

func (p *Pipeline) storedCredential(ctx context.Context, key settings.CredentialKey, keyed bool) *settings.StoredCredential {
	var out *settings.StoredCredential
	if !keyed {
		return nil
	}
	p.recall(ctx, func(st *settings.Settings) {
		if c := st.Credential(key); c != nil && c.Usable(time.Now()) && p.ofCurrentLogin(st, c.Login) {
			cp := *c
			out = &cp
		}
	})
	return out
}

// keepCredential stores a credential just minted, for the login that minted it.
func (p *Pipeline) keepCredential(ctx context.Context, key settings.CredentialKey, keyed bool, cred workspace.DatabaseCredential, minted time.Time, endpoint, instance string) {
	if !keyed {
		return
	}
	p.remember(ctx, func(st *settings.Settings) {
		login, ok := p.stored.Current(st)
		if !ok {
			return // the stored login changed meanwhile: this credential is not its
		}
		st.SetCredential(key, &settings.StoredCredential{Token: cred.Token, Expiry: cred.Expiry, Minted: minted,
			Workspace: p.cfg.Workspace, Database: string(dbName(endpoint, instance)), User: p.cfg.User, Login: login})
	})
}

// storedUser is the user name an earlier process of this login looked up ("" for none).
func (p *Pipeline) storedUser(ctx context.Context) string {
	u := ""
	p.recall(ctx, func(st *settings.Settings) {
		if su := st.UserName(p.stored.Key()); su != nil && p.ofCurrentLogin(st, su.Login) {
			u = su.Name
		}
	})
	return u
}

// keepUser stores the user name of this login.
func (p *Pipeline) keepUser(ctx context.Context, u string) {
	p.remember(ctx, func(st *settings.Settings) {
		if login, ok := p.stored.Current(st); ok {
			st.SetUserName(p.stored.Key(), &settings.StoredUser{Name: u, Login: login})
		}
	})
}

// storedLookup is the host lookup an earlier process stored for t (nil for none).
func (p *Pipeline) storedLookup(ctx context.Context, t *target) *settings.StoredLookup {
	var out *settings.StoredLookup
	p.recall(ctx, func(st *settings.Settings) {
		if l := st.Lookup(p.lookupKey(t)); l != nil && (p.cfg.Project == "" || l.Endpoint != "") {
			cp := *l
			out = &cp
		}
	})
	return out
}

// keepLookup stores the host lookup of t.
func (p *Pipeline) keepLookup(ctx context.Context, t *target) {
	p.remember(ctx, func(st *settings.Settings) {
		l := &settings.StoredLookup{Host: t.Host, State: t.State, Updated: time.Now()}
		if p.cfg.Project != "" {
			l.Endpoint = t.Endpoint
		}
		st.SetLookup(p.lookupKey(t), l)
	})
}

// needsToken reports whether this login will call the workspace: something it
// needs is neither in memory nor in the store.
func (p *Pipeline) needsToken(ctx context.Context, fresh bool) bool {
	if fresh {
		return true
	}
	p.mu.Lock()
	haveTarget, haveUser := p.target != nil, p.user != ""
	p.mu.Unlock()
	haveUser = haveUser || p.cfg.User != "" || p.cfg.UserIsClientID && p.cfg.ClientID != ""
	_, exp, haveCred := p.cred.Peek()
	haveCred = haveCred && (exp.IsZero() || time.Until(exp) > time.Minute)
	if haveTarget && haveUser && haveCred {
		return false
	}
	if !p.stores() || p.cfg.Endpoint == "" && p.cfg.Instance == "" {
		return true // nothing stored to start warm from, or a listing to make
	}
	key, _ := p.credentialKey(p.cfg.Endpoint, p.cfg.Instance)
	lookup := p.lookupKey(&target{Location: workspace.Location{Endpoint: p.cfg.Endpoint, Instance: p.cfg.Instance}})
	missing := false
	p.recall(ctx, func(st *settings.Settings) {
		if _, ok := p.stored.Current(st); !ok {
			missing = true // nothing stored, or the connection string brings a new login
			return
		}
		if !haveCred {
			c := st.Credential(key)
			missing = missing || c == nil || !c.Usable(time.Now()) || !p.ofCurrentLogin(st, c.Login)
		}
		if !haveTarget && p.cfg.Server == "" {
			l := st.Lookup(lookup)
			missing = missing || l == nil || !p.storedHostUsable(l.Host, p.cfg.Endpoint)
		}
		if !haveUser {
			su := st.UserName(p.stored.Key())
			missing = missing || su == nil || !p.ofCurrentLogin(st, su.Login)
		}
	})
	return missing
}

// loadHostMetadata reads the workspace host's metadata from the store.
func (p *Pipeline) loadHostMetadata(ctx context.Context) *oauth.HostMetadata {
	var out *oauth.HostMetadata
	p.recall(ctx, func(st *settings.Settings) {
		if m := st.HostMetadata[strings.ToLower(p.cfg.Workspace)]; m != nil {
			out = &oauth.HostMetadata{OIDCEndpoint: m.OIDCEndpoint, AccountID: m.AccountID, WorkspaceID: m.WorkspaceID, HostType: m.HostType}
		}
	})
	return out
}

// saveHostMetadata keeps the workspace host's metadata in the store.
func (p *Pipeline) saveHostMetadata(ctx context.Context, m *oauth.HostMetadata) {
	p.remember(ctx, func(st *settings.Settings) {
		if st.HostMetadata == nil {
			st.HostMetadata = map[string]*settings.StoredHostMetadata{}
		}
		st.HostMetadata[strings.ToLower(p.cfg.Workspace)] = &settings.StoredHostMetadata{OIDCEndpoint: m.OIDCEndpoint,
			AccountID: m.AccountID, WorkspaceID: m.WorkspaceID, HostType: m.HostType, Updated: time.Now()}
	})
}

// dropHostMetadata removes the workspace host's metadata from the store (the host
// refused its workspace id).
func (p *Pipeline) dropHostMetadata(ctx context.Context) {
	key := strings.ToLower(p.cfg.Workspace)
	p.log.Info("lakebase: the host refused the workspace id kept in the settings store; reading its metadata again",
		slog.String("entry", "host_metadata["+key+"]"))
	p.remember(ctx, func(st *settings.Settings) { delete(st.HostMetadata, key) })
}

// HasStoredLogin reports whether the store holds a login for this pipeline's
// workspace, client and scope.
func (p *Pipeline) HasStoredLogin(ctx context.Context) (bool, error) {
	if p.stored == nil {
		return false, nil
	}
	return p.stored.HasStoredLogin(ctx)
}

// SettingsLocation is where the pipeline's store is ("" when it has none).
func (p *Pipeline) SettingsLocation() string {
	if p.stored == nil {
		return ""
	}
	return p.stored.Store.Location()
}
