package demo

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

// Check runs an example against a fresh emulator and checks its output holds want.
func Check(t *testing.T, run func(ctx context.Context, dsn string, out io.Writer) error, want string) {
	t.Helper()
	emu := lakebasetest.Start(t)
	var out bytes.Buffer
	if err := run(context.Background(), emu.OAuthClientDSN(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), want) {
		t.Fatalf("output lacks %q:\n%s", want, out.String())
	}
}
