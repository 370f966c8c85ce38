package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// ErrCLI is matched by failures of the Databricks CLI token source.
var ErrCLI = errors.New("lakebase: databricks CLI")

// CLISource is the token source of AuthScheme=DatabricksCLI: it asks the Databricks
// CLI, as the Databricks SDK does: "databricks auth token --host <workspace>" (or
// "--profile <profile>"), whose JSON output holds access_token and expiry. The CLI
// keeps and refreshes the login that "databricks auth login" made. Path is the CLI
// (default: DATABRICKS_CLI_PATH, then "databricks" on PATH).
type CLISource struct {
	Path, Workspace, Profile string

	force atomic.Bool // the last token was refused: ask for a fresh one
}

// Token gets a token (oauth2.TokenSource).
func (s *CLISource) Token() (*oauth2.Token, error) { return s.TokenContext(context.Background()) }

// TokenContext gets a token.
func (s *CLISource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return cliToken(ctx, s.Path, s.Workspace, s.Profile, s.force.Swap(false))
}

// TokenRefused tells the source a workspace API refused its token: the CLI caches
// tokens itself, so the next call asks it for a fresh one (--force-refresh, where
// the installed CLI has it: v0.296.0 and later).
func (s *CLISource) TokenRefused(string) { s.force.Store(true) }

// forceRefreshSince is the first Databricks CLI version whose "auth token" takes
// --force-refresh.
var forceRefreshSince = [3]int{0, 296, 0}

var (
	cliVersionMu sync.Mutex
	cliVersions  = map[string][3]int{}
)

// cliVersion returns the version of the CLI at bin, asking it once per process.
func cliVersion(ctx context.Context, bin string) [3]int {
	cliVersionMu.Lock()
	defer cliVersionMu.Unlock()
	if v, ok := cliVersions[bin]; ok {
		return v
	}
	var v [3]int
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err == nil {
		s := string(out)
		if i := strings.Index(s, "v"); i >= 0 {
			fmt.Sscanf(s[i:], "v%d.%d.%d", &v[0], &v[1], &v[2])
		}
	}
	cliVersions[bin] = v
	return v
}

func versionAtLeast(v, min [3]int) bool {
	for i := range v {
		if v[i] != min[i] {
			return v[i] > min[i]
		}
	}
	return true
}

func cliToken(ctx context.Context, path, workspace, profile string, force bool) (*oauth2.Token, error) {
	if path == "" {
		path = os.Getenv("DATABRICKS_CLI_PATH")
	}
	if path == "" {
		path = "databricks"
	}
	bin, err := exec.LookPath(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %q was not found (install the Databricks CLI or set DATABRICKS_CLI_PATH), then run: databricks auth login --host %s", ErrCLI, path, workspace)
	}
	args := []string{"auth", "token", "--host", workspace}
	if profile != "" {
		args = []string{"auth", "token", "--profile", profile}
	}
	if force && versionAtLeast(cliVersion(ctx, bin), forceRefreshSince) {
		args = append(args, "--force-refresh")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return nil, fmt.Errorf("%w: databricks %s failed (%v): %s; log in with: databricks auth login --host %s", ErrCLI, strings.Join(args, " "), err, msg, workspace)
	}
	var out struct {
		AccessToken string    `json:"access_token"`
		TokenType   string    `json:"token_type"`
		Expiry      time.Time `json:"expiry"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || out.AccessToken == "" {
		return nil, fmt.Errorf("%w: databricks auth token printed no access_token (is the CLI recent enough?)", ErrCLI)
	}
	return withExpiry(&oauth2.Token{AccessToken: out.AccessToken, TokenType: out.TokenType, Expiry: out.Expiry}), nil
}

// FederationSource is the token source of AuthScheme=OIDCFederation: a workload
// identity JWT (read anew from File, or from the environment variable Env, on every
// call, since platforms rotate it) exchanged for a workspace token (RFC 8693).
type FederationSource struct {
	Client *TokenClient
	File   string
	Env    string
	Scope  string
}

// Token gets a token (oauth2.TokenSource).
func (s *FederationSource) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext gets a token.
func (s *FederationSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	subject, err := ReadSubjectToken(s.File, s.Env)
	if err != nil {
		return nil, err
	}
	return s.Client.TokenExchange(ctx, subject, s.Scope)
}

// ReadSubjectToken reads a workload identity JWT from a file or an environment
// variable (file wins when both are set). The file is read anew each time, since
// platforms rotate it.
func ReadSubjectToken(file, envVar string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("lakebase: reading the workload identity token: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("lakebase: the workload identity token file %s is empty", file)
	}
	if t := strings.TrimSpace(os.Getenv(envVar)); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("lakebase: the environment variable %s holds no workload identity token", envVar)
}
