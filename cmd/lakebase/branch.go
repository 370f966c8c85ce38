package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/workspace"
)

const branchUsage = `usage: lakebase branch <create|list|delete|gc> [flags]

  create [-name ID] [-from BRANCH] [-ttl 24h] [-wait 10m] [-export]
        make a branch of the connection string's project (from its branch, or -from),
        wait until it is ready (up to -wait), and print "Project=...;Branch=..." to add to the
        connection string (-export: LAKEBASE_ENDPOINT=<its read-write endpoint>, for
        $GITHUB_ENV)
  list  the project's branches: name, state, expiry
  delete ID
        delete a branch
  gc [-prefix P] [-dry-run]
        delete the branches past their expiry, and those whose id starts with P
        of the connection string's project (never its default or a protected
        branch; every failure is reported, the sweep goes on): a sweep for CI
`

// subcommandFlags splits "<cmd> <sub> [flags]": it prints usage for no
// subcommand or -h, and returns the subcommand, its arguments and a flag set for it.
func subcommandFlags(cmd, usage string, args []string, stderr io.Writer) (string, []string, *flag.FlagSet, error) {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return "", nil, nil, errors.New(cmd + ": a subcommand is needed")
		}
		return "", nil, nil, flag.ErrHelp
	}
	fs := flag.NewFlagSet(cmd+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	return args[0], args[1:], fs, nil
}

// branchCmd runs "lakebase branch ...". The connection string names the project
// (Project, or Endpoint) and the login.
func branchCmd(ctx context.Context, cfg *lakebase.Config, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	sub, args, fs, err := subcommandFlags("branch", branchUsage, args, stderr)
	if err != nil {
		return err
	}
	name := fs.String("name", "", "create: the branch id (default: ci- and a random suffix)")
	from := fs.String("from", "", "create: the source branch (id or path; default: the connection string's branch, else the project's default)")
	ttl := fs.Duration("ttl", 24*time.Hour, "create: how long the branch lives unless deleted (0: until deleted)")
	wait := fs.Duration("wait", 10*time.Minute, "create: how long to wait for the branch to be made and ready")
	export := fs.Bool("export", false, "create: print LAKEBASE_ENDPOINT=<endpoint> instead of Project/Branch")
	prefix := fs.String("prefix", "", "gc: also delete branches whose id starts with this")
	dry := fs.Bool("dry-run", false, "gc: only print what would be deleted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := connector(cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	// The connection string's project, and its branch (the source of create).
	var project workspace.ProjectName
	branch := cfg.Branch
	switch {
	case cfg.Endpoint != "":
		e, err := workspace.ParseEndpoint(cfg.Endpoint)
		if err != nil {
			return fmt.Errorf("branch: %w", err)
		}
		project, branch = e.BranchName().ProjectName(), e.Branch
	case cfg.Project != "":
		if project, err = workspace.ParseProject(cfg.Project); err != nil {
			return fmt.Errorf("branch: %w", err)
		}
	default:
		return errors.New("branch: the connection string names no project (set Project, or Endpoint)")
	}
	api := c.Workspace()
	projectPath := project.String()
	// path is the resource name of a branch of the connection string's project, given
	// as an id or a path; anything else is refused before a request is made.
	path := func(id string) (string, error) {
		b, err := project.Branch(id)
		if err != nil {
			return "", fmt.Errorf("branch %q: not a branch id (1-63 lowercase letters, digits and hyphens, starting with a letter) or a branch projects/<p>/branches/<b> of the connection string's project %s", id, projectPath)
		}
		return b.String(), nil
	}
	switch sub {
	case "create":
		id := *name
		if id == "" {
			b := make([]byte, 4)
			rand.Read(b)
			id = "ci-" + hex.EncodeToString(b)
		}
		if !workspace.ValidResourceID(id) {
			return fmt.Errorf("branch create: -name %q: a branch id is 1-63 lowercase letters, digits and hyphens, starting with a letter", id)
		}
		source := ""
		if *from != "" {
			if source, err = path(*from); err != nil {
				return err
			}
		} else if branch != "" {
			if source, err = path(branch); err != nil {
				return err
			}
		}
		full := workspace.BranchName{Project: project.ID, ID: id}.String()
		if *wait <= 0 {
			return fmt.Errorf("branch create: -wait %v: give how long to wait for the branch (such as 10m)", *wait)
		}
		made, cancel := context.WithTimeout(ctx, *wait)
		defer cancel()
		gaveUp := func(err error) error {
			if made.Err() == context.DeadlineExceeded && ctx.Err() == nil {
				return fmt.Errorf("branch create %s: waited %v (-wait) for the branch to be made and ready: %w; it may have been made: check it (lakebase branch list) before creating it again", full, *wait, err)
			}
			return err
		}
		op, err := api.CreateBranch(made, workspace.CreateBranchRequest{Project: projectPath, BranchID: id, Source: source, TTL: *ttl})
		if err != nil {
			return gaveUp(err)
		}
		if _, err := op.Wait(made); err != nil {
			return gaveUp(err)
		}
		if *export {
			eps, err := api.ListEndpoints(ctx, workspace.ListEndpointsRequest{Branch: full})
			if err != nil {
				return err
			}
			for _, ep := range eps {
				if ep.Type() == workspace.EndpointTypeReadWrite {
					fmt.Fprintf(stdout, "LAKEBASE_ENDPOINT=%s\n", ep.Name)
					return nil
				}
			}
			return fmt.Errorf("branch %s has no read-write endpoint yet", full)
		}
		fmt.Fprintf(stdout, "Project=%s;Branch=%s\n", project.ID, id)
		return nil
	case "list":
		bs, err := api.ListBranches(ctx, workspace.ListBranchesRequest{Project: projectPath})
		if err != nil {
			return err
		}
		for _, b := range bs {
			def := ""
			if b.IsDefault() {
				def = " (default)"
			}
			exp := b.ExpireTime
			if exp == "" {
				exp = "-"
			}
			fmt.Fprintf(stdout, "%-60s %-8s expires %s%s\n", b.Name, b.Status.CurrentState, exp, def)
		}
		return nil
	case "delete":
		if fs.NArg() != 1 {
			return errors.New("branch delete: give one branch id")
		}
		name, err := path(fs.Arg(0))
		if err != nil {
			return err
		}
		b, err := api.GetBranch(ctx, workspace.GetBranchRequest{Name: name})
		if err != nil {
			return err
		}
		switch {
		case b.IsDefault():
			return fmt.Errorf("branch %s is the project's default branch: lakebase branch delete does not delete it", name)
		case b.Protected():
			return fmt.Errorf("branch %s is protected: unprotect it in the workspace first", name)
		}
		op, err := api.DeleteBranch(ctx, workspace.DeleteBranchRequest{Name: name})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", name)
		return nil
	case "gc":
		bs, err := api.ListBranches(ctx, workspace.ListBranchesRequest{Project: projectPath})
		if err != nil {
			return err
		}
		// Only the connection string's project, never its default or a protected
		// branch; one failure does not stop the sweep, and each is reported.
		var failed []error
		for _, b := range bs {
			bn, err := workspace.ParseBranch(b.Name)
			expired := workspace.ParseTime(b.ExpireTime)
			if !(*prefix != "" && strings.HasPrefix(bn.ID, *prefix) || !expired.IsZero() && time.Now().After(expired)) {
				continue
			}
			if err != nil || bn.Project != project.ID {
				fmt.Fprintf(stdout, "skipped %s: not a branch of %s\n", b.Name, projectPath)
				continue
			}
			if b.IsDefault() || b.Protected() {
				fmt.Fprintf(stdout, "skipped %s: the default or a protected branch\n", b.Name)
				continue
			}
			if *dry {
				fmt.Fprintf(stdout, "would delete %s\n", b.Name)
				continue
			}
			op, err := api.DeleteBranch(ctx, workspace.DeleteBranchRequest{Name: b.Name})
			if err == nil {
				_, err = op.Wait(ctx)
			}
			if err != nil {
				fmt.Fprintf(stderr, "lakebase: could not delete %s: %v\n", b.Name, err)
				failed = append(failed, err)
				continue
			}
			fmt.Fprintf(stdout, "deleted %s\n", b.Name)
		}
		if len(failed) > 0 {
			return fmt.Errorf("branch gc: %d branches could not be deleted", len(failed))
		}
		return nil
	}
	fmt.Fprint(stderr, branchUsage)
	return fmt.Errorf("branch: unknown subcommand %q", sub)
}
