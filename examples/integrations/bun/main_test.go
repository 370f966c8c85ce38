package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

func TestRunsAgainstTheEmulator(t *testing.T) {
	emu := lakebasetest.Start(t)
	var out bytes.Buffer
	if err := run(context.Background(), emu.OAuthClientDSN(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "bun: 2 books, first \"The Go Programming Language\"") {
		t.Fatalf("output:\n%s", out.String())
	}
}
