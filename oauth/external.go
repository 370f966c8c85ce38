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
	"time"
)

// ErrCLI is matched by failures of the Databricks CLI token source.
var ErrCLI = errors.New("oauth: databricks CLI")

// CLIToken gets a workspace token from the Databricks CLI, as the Databricks SDK does:
// "databricks auth token --host <workspace>" (or "--profile <profile>"), whose JSON
// output holds access_token and expiry. The CLI keeps and refreshes the login that
// "databricks auth login" made. Path is the CLI (default: DATABRICKS_CLI_PATH, then
// "databricks" on PATH).
func CLIToken(ctx context.Context, path, workspace, profile string) (*Token, error) {
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
	t := &Token{AccessToken: out.AccessToken, TokenType: out.TokenType, Expiry: out.Expiry}
	if t.Expiry.IsZero() {
		t.Expiry = JWTExpiry(t.AccessToken)
	}
	return t, nil
}

// ReadSubjectToken reads a workload identity JWT from a file or an environment
// variable (file wins when both are set). The file is read anew each time, since
// platforms rotate it.
func ReadSubjectToken(file, envVar string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("oauth: reading the workload identity token: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("oauth: the workload identity token file %s is empty", file)
	}
	if t := strings.TrimSpace(os.Getenv(envVar)); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("oauth: the environment variable %s holds no workload identity token", envVar)
}
