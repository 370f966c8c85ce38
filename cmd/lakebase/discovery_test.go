package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase/internal/testenv"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// lakebase login with no workspace: the login starts at the login host, the person
// picks the workspace, and the command stores the tokens under it and prints the
// connection string to use, which then works without a login.
func TestCommand_LoginWithNoWorkspace(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true})
	store := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	dsn := fmt.Sprintf("AuthScheme=OAuthPKCE;LoginHost=%s;CallbackURL=http://localhost:%d;OAuthSettingsLocation=%s", emu.LoginHost(), freePort(t), store)
	code, out, stderr := loginNoBrowser(t, dsn, emu.LoginHost()+"/?destination_url=")
	if code != 0 || !strings.Contains(out, "Logged in to "+emu.URL) {
		t.Fatalf("login (%d): %s\n%s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	conn := lines[len(lines)-1]
	if !strings.Contains(conn, "DatabricksInstance="+emu.URL) || !strings.Contains(conn, "InitiateOAuth=REFRESH") {
		t.Fatalf("the printed connection string: %q", conn)
	}
	conn += fmt.Sprintf(";Instance=%s;Port=%d;SSLMode=verify-full;SSLServerCert=%s", emu.Instance, emu.Port, emu.CAFile)
	if o, e, code := lakebaseCmd(t, conn, nil, "psql", "-XAtc", "SELECT current_user"); code != 0 || strings.TrimSpace(o) != emu.User.Email {
		t.Fatalf("psql with the printed connection string (%d): %s %s", code, o, e)
	}
}
