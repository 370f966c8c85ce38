package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
	"github.com/lakebase-go/lakebase/workspace"
)

// target is the database a credential is minted for, as the workspace located it
// (workspace.Client.Locate) or as the store kept it.
type target struct {
	workspace.Location
	// stored: Host was read back from the settings store and not confirmed by the
	// workspace in this process (used only where storedHostUsable allows).
	stored bool
}

// resolveTarget works out, once, which database to mint for and its host.
func (p *Pipeline) resolveTarget(ctx context.Context) (*target, error) {
	if err := p.targetMu.Lock(ctx); err != nil {
		return nil, err
	}
	defer p.targetMu.Unlock()
	p.mu.Lock()
	t := p.target
	p.mu.Unlock()
	if t != nil {
		return t, nil
	}
	// Of a fleet starting at once on one store, one process looks the database up
	// and stores it; the others wait here and find it stored.
	err := p.exclusive(ctx, "lookup", func() (err error) {
		t, err = p.lookUpTarget(ctx)
		return err
	})
	return t, err
}

// lookUpTarget finds the database: from the store (an earlier lookup), else from
// the workspace, storing the answer.
func (p *Pipeline) lookUpTarget(ctx context.Context) (*target, error) {
	cfg := p.cfg
	named := workspace.Location{Instance: cfg.Instance, Endpoint: cfg.Endpoint}
	storedHost := "" // what the store said, when the workspace is asked instead
	if cfg.Server == "" && (cfg.Endpoint != "" || cfg.Instance != "" || cfg.Project != "") {
		// A host looked up by an earlier process: hosts do not change. But the store
		// is only a file: what it says is used as is only where the TLS check proves
		// it (storedHostUsable); otherwise the workspace is asked before a credential
		// goes anywhere.
		if l := p.storedLookup(ctx, &target{Location: named}); l != nil {
			p.mu.Lock()
			failed := p.storedHostFailed
			p.mu.Unlock()
			t := &target{Location: named, stored: true}
			t.Host, t.State = l.Host, l.State
			if cfg.Project != "" {
				t.Endpoint = l.Endpoint
			}
			if !failed && p.storedHostUsable(t.Host, t.Endpoint) {
				p.setTarget(t)
				return t, nil
			}
			storedHost = t.Host
		}
	}
	t := &target{Location: named}
	switch {
	case cfg.Server != "" && (cfg.Endpoint != "" || cfg.Instance != ""):
		t.Host = cfg.Server // named twice: nothing to ask
	default:
		req := workspace.LocateRequest{Endpoint: cfg.Endpoint, Instance: cfg.Instance, Project: cfg.Project, Branch: cfg.Branch,
			ReadOnly: cfg.ReadOnly, Pooled: cfg.Pooled}
		switch {
		case cfg.Server != "" && cfg.Project == "":
			req = workspace.LocateRequest{Server: cfg.Server} // a host to find among them all
		case cfg.Server != "":
			req.Pooled = false // Server is the host: which of the endpoint's it would be does not matter
		}
		loc, err := p.rest.Locate(ctx, req)
		if err != nil {
			return nil, &credentialError{p.driverError(err)}
		}
		t.Location = loc
		if cfg.Server != "" {
			// Project and Server: the branch's endpoint is minted for, and Server is
			// where the session goes, as with Endpoint and Server.
			t.Host = cfg.Server
		}
	}
	p.log.Debug("lakebase: database resolved", slog.String("host", t.Host), slog.String("endpoint", t.Endpoint), slog.String("instance", t.Instance))
	if storedHost != "" && !strings.EqualFold(storedHost, t.Host) {
		p.log.Warn("lakebase: the settings store's host lookup names a host the workspace does not; it was not used and is replaced with the workspace's answer",
			slog.String("entry", "lookups["+p.lookupKey(t).String()+"]"), slog.String("location", p.stored.Store.Location()),
			slog.String("stored_host", storedHost), slog.String("host", t.Host))
	}
	p.setTarget(t)
	if cfg.Server == "" {
		p.keepLookup(ctx, t)
	}
	return t, nil
}

// driverError is the one place a lookup's errors become the driver's: a property
// the workspace does not know is the driver's configuration error.
func (p *Pipeline) driverError(err error) error {
	var pe *workspace.PropertyError
	if p.propErr != nil && errors.As(err, &pe) {
		return p.propErr(pe)
	}
	return err
}

func (p *Pipeline) setTarget(t *target) {
	p.mu.Lock()
	p.target = t
	p.mu.Unlock()
}

// storedHostUsable reports whether host, read back from the settings store, may be
// used without asking the workspace. The store is a file that whoever can write it
// can change; it must not decide where a database credential goes. A stored host is
// used as is only with SSLMode=verify-full and only when it is in the workspace's
// cloud (oauth.InWorkspaceCloud: the Databricks zones of DatabricksInstance, or
// loopback for a loopback workspace): the certificate check then proves the server
// is that name before any password is sent, and the name is one of the cloud that
// minted the credential, not one an attacker can hold a certificate for. A stored
// endpoint of Project must be of the Branch named; with no Branch (the project's
// default branch) the store cannot say which branch that is (a stored endpoint of
// any other branch would move the login there), so the workspace is asked.
// A ReadOnly login never uses a stored host as is: the certificate proves a host's
// name, not its role, and a lookup edited to name the primary would let a read-only
// login write. Everything else is looked up again (one request) and the stored
// entry replaced.
func (p *Pipeline) storedHostUsable(host, endpoint string) bool {
	if !p.cfg.VerifyFull || p.cfg.ReadOnly || host == "" || !oauth.InWorkspaceCloud(p.cfg.Workspace, host) {
		return false
	}
	if p.cfg.Project != "" {
		return p.cfg.Branch != "" && strings.HasPrefix(endpoint, "projects/"+p.cfg.Project+"/branches/"+p.cfg.Branch+"/endpoints/")
	}
	return true
}

// ForgetStoredHost drops a host that came from the settings store (in memory and in
// the store) after a connect to it failed before any password was sent (its
// certificate did not verify, or nothing listens there): the next login asks the
// workspace. It reports whether there was one to drop.
func (p *Pipeline) ForgetStoredHost(ctx context.Context, cause error) bool {
	if p.targetMu.Lock(ctx) != nil {
		return false
	}
	defer p.targetMu.Unlock()
	p.mu.Lock()
	t := p.target
	if t == nil || !t.stored {
		p.mu.Unlock()
		return false
	}
	p.target, p.storedHostFailed = nil, true
	p.mu.Unlock()
	key := p.lookupKey(t)
	p.log.Warn("lakebase: a host from the settings store could not be connected to; dropping the stored entry and asking the workspace",
		slog.String("entry", "lookups["+key.String()+"]"), slog.String("location", p.stored.Store.Location()),
		slog.String("host", t.Host), slog.String("error", cause.Error()))
	p.remember(ctx, func(st *settings.Settings) {
		if l := st.Lookup(key); l != nil && strings.EqualFold(l.Host, t.Host) {
			st.DeleteLookup(key)
		}
	})
	return true
}

// dropTarget forgets the database lookup of Project and Branch, in memory and in the
// store, so the next login resolves it again. Endpoint, Instance and Server name
// their database themselves and keep theirs.
func (p *Pipeline) dropTarget(ctx context.Context) {
	if p.cfg.Project == "" {
		return
	}
	if p.targetMu.Lock(ctx) != nil {
		return
	}
	defer p.targetMu.Unlock()
	p.mu.Lock()
	t := p.target
	p.target = nil
	p.mu.Unlock()
	if t == nil {
		t = &target{}
	}
	key := p.lookupKey(t)
	p.remember(ctx, func(st *settings.Settings) { st.DeleteLookup(key) })
}

// DatabaseState asks the workspace for the state of the database looked up, now:
// "" when it cannot say, and the error of a disabled endpoint, which never wakes.
func (p *Pipeline) DatabaseState(ctx context.Context) (string, error) {
	p.mu.Lock()
	t := p.target
	p.mu.Unlock()
	if t == nil {
		return "", nil
	}
	return p.rest.State(ctx, t.Location)
}

// CheckRole reports where the role of user would be (the branch or instance) and
// whether the workspace lists no role of exactly that name; err is the roles API's
// failure.
func (p *Pipeline) CheckRole(ctx context.Context, user string) (where string, missing bool, err error) {
	t, err := p.resolveTarget(ctx)
	if err != nil {
		return "", false, err
	}
	return p.rest.RoleMissing(ctx, t.Location, user)
}
