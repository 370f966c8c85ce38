package lakebasetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/workspace"
)

// BranchOptions adjust Branch.
type BranchOptions struct {
	// TTL is how long the branch lives if nobody deletes it (default 1 hour): a
	// crashed test leaves nothing behind for long.
	TTL time.Duration
	// Wait bounds the creation (default 5 minutes).
	Wait time.Duration
	// ConnectorOptions are given to the connectors that make and delete the branch
	// (e.g. lakebase.WithHTTPClient: their requests go through its client).
	ConnectorOptions []lakebase.Option
	// Roles are made on the new branch through the roles API, so a test can log in
	// to it as another identity (a role the parent lacks).
	Roles []workspace.RoleSpec
}

// Branch makes a database branch for tb from the database parentDSN names (a
// lakebase connection string with Project and Branch, or Endpoint), waits until it
// is ready, and returns a connection string for it (Project and Branch set). The
// branch has a copy of the parent's data at this moment; writes to one are not seen
// by the other. It is deleted when tb ends. It works against the emulator and
// against a real workspace (through the Autoscaling branches API), with the
// login of parentDSN.
func Branch(tb testing.TB, parentDSN string, opts ...BranchOptions) string {
	tb.Helper()
	var o BranchOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Minute
	}
	c, err := lakebase.NewConnector(parentDSN, o.ConnectorOptions...)
	if err != nil {
		tb.Fatalf("lakebasetest.Branch: %v", err)
	}
	defer c.Close()
	cfg := c.Config()
	var parent workspace.BranchName // zero: the project's default branch
	switch {
	case cfg.Endpoint != "":
		e, err := workspace.ParseEndpoint(cfg.Endpoint)
		if err != nil {
			tb.Fatalf("lakebasetest.Branch: %v", err)
		}
		parent = e.BranchName()
	case cfg.Project != "":
		p, err := workspace.ParseProject(cfg.Project)
		if err == nil && cfg.Branch != "" {
			parent, err = p.Branch(cfg.Branch)
		} else {
			parent.Project = p.ID
		}
		if err != nil {
			tb.Fatalf("lakebasetest.Branch: %v", err)
		}
	default:
		tb.Fatal("lakebasetest.Branch: the parent connection string names no project (set Project and Branch, or Endpoint)")
	}
	project := parent.ProjectName()
	source := ""
	if parent.ID != "" {
		source = parent.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Wait)
	defer cancel()
	api := c.Workspace()
	id := BranchID(tb.Name())
	name := workspace.BranchName{Project: project.ID, ID: id}.String()
	op, err := api.CreateBranch(ctx, workspace.CreateBranchRequest{Project: project.String(), BranchID: id, Source: source, TTL: o.TTL})
	if err != nil {
		tb.Fatalf("lakebasetest.Branch: creating %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := lakebase.NewConnector(parentDSN, o.ConnectorOptions...)
		if err != nil {
			return
		}
		defer c.Close()
		op, err := c.Workspace().DeleteBranch(ctx, workspace.DeleteBranchRequest{Name: name})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		if err != nil {
			tb.Logf("lakebasetest.Branch: deleting %s: %v", name, err)
		}
	})
	if _, err := op.Wait(ctx); err != nil {
		tb.Fatalf("lakebasetest.Branch: creating %s (waiting up to %v): %v", name, o.Wait, err)
	}
	// Make sure the branch has a read-write endpoint to connect to.
	eps, err := api.ListEndpoints(ctx, workspace.ListEndpointsRequest{Branch: name})
	if err != nil {
		tb.Fatalf("lakebasetest.Branch: listing the endpoints of %s: %v", name, err)
	}
	hasRW := false
	for _, ep := range eps {
		hasRW = hasRW || ep.Type() == workspace.EndpointTypeReadWrite
	}
	if !hasRW {
		op, err := api.CreateEndpoint(ctx, workspace.CreateEndpointRequest{Branch: name, EndpointID: "primary"})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		if err != nil {
			tb.Fatalf("lakebasetest.Branch: creating the endpoint of %s: %v", name, err)
		}
	}
	for _, spec := range o.Roles {
		op, err := api.CreateRole(ctx, workspace.CreateRoleRequest{Branch: name, Spec: spec})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		if err != nil {
			tb.Fatalf("lakebasetest.Branch: creating the role %s on %s: %v", spec.PostgresRole, name, err)
		}
	}
	// The branch's connection string is the parent's configuration naming the branch
	// (whatever form the parent string had: CData pairs or a lakebase:// URL).
	cfg.Endpoint, cfg.Instance, cfg.Project, cfg.Branch = "", "", project.ID, id
	return cfg.FormatDSN()
}

// BranchID derives a branch id from a test name: lowercase letters, digits and
// hyphens, starting with a letter, 1 to 63 characters, with a random suffix.
func BranchID(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), "-")
	if base == "" || base[0] < 'a' || base[0] > 'z' {
		base = "t-" + base
	}
	if len(base) > 55 {
		base = strings.TrimRight(base[:55], "-")
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	return base + "-" + hex.EncodeToString(suffix)
}
