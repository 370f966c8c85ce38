package main

import (
	"github.com/lakebase-go/lakebase/internal/testenv"

	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

func TestPgxpoolExample(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t)
	var out bytes.Buffer
	if err := run(context.Background(), emu.OAuthClientDSN(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "connected as "+emu.ServicePrincipal.ClientID+"; counted 1000 rows") {
		t.Fatalf("output: %s", out.String())
	}
}
