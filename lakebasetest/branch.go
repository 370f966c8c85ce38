package lakebasetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/lakebase-go/lakebase"
)

// BranchOptions adjust Branch.
type BranchOptions struct {
	// TTL is how long the branch lives if nobody deletes it (default 1 hour): a
	// crashed test leaves nothing behind for long.
	TTL time.Duration
	// Wait bounds the creation (default 5 minutes).
	Wait time.Duration
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
	c, err := lakebase.NewConnector(parentDSN)
	if err != nil {
		tb.Fatalf("lakebasetest.Branch: %v", err)
	}
	defer c.Close()
	cfg := c.Config()
	project, parent := cfg.Project, ""
	if cfg.Endpoint != "" {
		p := strings.Split(cfg.Endpoint, "/")
		project, parent = p[1], strings.Join(p[:4], "/")
	} else if cfg.Branch != "" {
		parent = "projects/" + project + "/branches/" + cfg.Branch
	}
	if project == "" {
		tb.Fatal("lakebasetest.Branch: the parent connection string names no project (set Project and Branch, or Endpoint)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Wait)
	defer cancel()
	api := &branchAPI{base: cfg.DatabricksInstance + "/api/2.0/postgres/", hc: oauth2.NewClient(ctx, c.TokenSource())}
	id := BranchID(tb.Name())
	name := "projects/" + project + "/branches/" + id
	spec := map[string]any{"ttl": fmt.Sprintf("%ds", int(o.TTL/time.Second))}
	if parent != "" {
		spec["source_branch"] = parent
	}
	var op struct {
		Name  string          `json:"name"`
		Done  bool            `json:"done"`
		Error json.RawMessage `json:"error"`
	}
	if err := api.do(ctx, http.MethodPost, "projects/"+project+"/branches?branch_id="+url.QueryEscape(id), map[string]any{"spec": spec}, &op); err != nil {
		tb.Fatalf("lakebasetest.Branch: creating %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := lakebase.NewConnector(parentDSN)
		if err != nil {
			return
		}
		defer c.Close()
		api := &branchAPI{base: api.base, hc: oauth2.NewClient(ctx, c.TokenSource())}
		if err := api.do(ctx, http.MethodDelete, name, nil, nil); err != nil {
			tb.Logf("lakebasetest.Branch: deleting %s: %v", name, err)
		}
	})
	for !op.Done {
		select {
		case <-ctx.Done():
			tb.Fatalf("lakebasetest.Branch: %s was not ready within %v", name, o.Wait)
		case <-time.After(200 * time.Millisecond):
		}
		if err := api.do(ctx, http.MethodGet, op.Name, nil, &op); err != nil {
			tb.Fatalf("lakebasetest.Branch: waiting for %s: %v", name, err)
		}
	}
	if len(op.Error) > 0 && string(op.Error) != "null" {
		tb.Fatalf("lakebasetest.Branch: creating %s failed: %s", name, op.Error)
	}
	return parentDSN + ";Endpoint=;Instance=;Project=" + project + ";Branch=" + id
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

type branchAPI struct {
	base string
	hc   *http.Client
}

func (a *branchAPI) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			ErrorCode string `json:"error_code"`
			Message   string `json:"message"`
		}
		json.Unmarshal(data, &e)
		return fmt.Errorf("HTTP %d %s: %s", resp.StatusCode, e.ErrorCode, e.Message)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
