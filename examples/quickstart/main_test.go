package main

import (
	"github.com/lakebase-go/lakebase/internal/testenv"

	"bytes"
	"context"
	"strings"
	"testing"
)

func TestQuickstart_WalksThroughOnTheEmulator(t *testing.T) {
	testenv.NeedPostgres(t)
	var out bytes.Buffer
	if err := run(context.Background(), "", &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"Starting the local Lakebase emulator", "credential expires:", "SELECT current_user ->",
		"3 | pgx does the data traffic", "EXEC GetOAuthAuthorizationURL", "ada@example.com", "PostgreSQL stopped"} {
		if !strings.Contains(s, want) {
			t.Fatalf("output lacks %q:\n%s", want, s)
		}
	}
	// No token (JWTs start with eyJ) and no client secret (dose...) is ever shown.
	if strings.Contains(s, "eyJ") || strings.Contains(s, "dose") {
		t.Fatalf("output shows a secret:\n%s", s)
	}
}
