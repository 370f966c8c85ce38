package main

import (
	"github.com/lakebase-go/lakebase/internal/testenv"

	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

func TestHeadless_CodeFromAnotherMachine(t *testing.T) {
	testenv.NeedPostgres(t)
	emu := lakebasetest.Start(t, lakebasetest.Options{AutoApprove: true})
	settings := filepath.Join(t.TempDir(), "OAuthSettings.txt")
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), emu.OAuthPKCEDSN(), settings, inR, outW)
		outW.Close()
	}()
	var transcript strings.Builder
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		line := sc.Text()
		transcript.WriteString(line + "\n")
		if u := strings.TrimSpace(line); strings.Contains(u, "/oidc/v1/authorize?") {
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			go io.WriteString(inW, resp.Header.Get("Location")+"\n") // io.Pipe writes wait for the reader
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("%v\n%s", err, transcript.String())
	}
	out := transcript.String()
	if !strings.Contains(out, "Logged in as "+emu.User.Email) || !strings.Contains(out, "no code:") {
		t.Fatalf("transcript:\n%s", out)
	}
}
