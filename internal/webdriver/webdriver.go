// Package webdriver drives a headless Chromium through chromedriver (the W3C
// WebDriver protocol), just enough for tests to click through a login page.
package webdriver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/lakebase-go/lakebase/internal/testenv"
)

// ErrUnavailable is returned when chromium or chromedriver is not installed.
var ErrUnavailable = errors.New("webdriver: chromium and chromedriver are needed (Debian: apt-get install -y chromium chromium-driver)")

// Browser is a headless Chromium session.
type Browser struct {
	cmd     *exec.Cmd
	base    string
	session string
	dataDir string
}

// Find returns the paths of chromium and chromedriver.
func Find() (browser, driver string, err error) {
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			browser = p
			break
		}
	}
	driver, _ = exec.LookPath("chromedriver")
	if browser == "" || driver == "" {
		return "", "", ErrUnavailable
	}
	return browser, driver, nil
}

// StartForTest starts a browser for tb and stops it when tb ends. Under -short, or
// when Chromium is missing and LAKEBASE_REQUIRE_BROWSER is not 1 (plain go test),
// it skips tb with a line that says why; under make test a missing browser fails.
func StartForTest(ctx context.Context, tb testing.TB) *Browser {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs Chromium: not run with -short")
	}
	b, err := Start(ctx)
	if errors.Is(err, ErrUnavailable) && !testenv.BrowserRequired() {
		tb.Skipf("skipped: %v (make test installs them and requires this test)", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// Start starts chromedriver and a headless Chromium session.
func Start(ctx context.Context) (*Browser, error) {
	browser, driver, err := Find()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	b := &Browser{base: "http://127.0.0.1:" + strconv.Itoa(port)}
	b.cmd = exec.Command(driver, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1")
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(b.base + "/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Close()
			return nil, fmt.Errorf("webdriver: chromedriver did not start: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.dataDir, err = os.MkdirTemp("", "lakebase-chromium-"); err != nil {
		b.Close()
		return nil, err
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": browser,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--disable-dev-shm-usage", "--user-data-dir=" + b.dataDir},
		},
	}}}
	var out struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	if err := b.call(ctx, "POST", "/session", caps, &out); err != nil {
		b.Close()
		return nil, err
	}
	b.session = out.Value.SessionID
	return b, nil
}

func (b *Browser) call(ctx context.Context, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body == nil {
		body = map[string]any{}
	}
	data, _ := json.Marshal(body)
	rd = bytes.NewReader(data)
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var raw struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("webdriver: %s %s: %d %s", method, path, resp.StatusCode, raw.Value)
	}
	if out != nil {
		return json.Unmarshal(append(append([]byte(`{"value":`), raw.Value...), '}'), out)
	}
	return nil
}

// Navigate opens url.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	return b.call(ctx, "POST", "/session/"+b.session+"/url", map[string]string{"url": url}, nil)
}

// Click clicks the first element matching a CSS selector.
func (b *Browser) Click(ctx context.Context, css string) error {
	var el struct {
		Value map[string]string `json:"value"`
	}
	if err := b.call(ctx, "POST", "/session/"+b.session+"/element", map[string]string{"using": "css selector", "value": css}, &el); err != nil {
		return err
	}
	for _, id := range el.Value {
		return b.call(ctx, "POST", "/session/"+b.session+"/element/"+id+"/click", nil, nil)
	}
	return fmt.Errorf("webdriver: no element %s", css)
}

// Text returns the text of the first element matching a CSS selector.
func (b *Browser) Text(ctx context.Context, css string) (string, error) {
	var el struct {
		Value map[string]string `json:"value"`
	}
	if err := b.call(ctx, "POST", "/session/"+b.session+"/element", map[string]string{"using": "css selector", "value": css}, &el); err != nil {
		return "", err
	}
	for _, id := range el.Value {
		var out struct {
			Value string `json:"value"`
		}
		err := b.call(ctx, "GET", "/session/"+b.session+"/element/"+id+"/text", nil, &out)
		return out.Value, err
	}
	return "", fmt.Errorf("webdriver: no element %s", css)
}

// URL returns the current page's URL.
func (b *Browser) URL(ctx context.Context) (string, error) {
	var out struct {
		Value string `json:"value"`
	}
	err := b.call(ctx, "GET", "/session/"+b.session+"/url", nil, &out)
	return out.Value, err
}

// Close ends the session and stops chromedriver (and with it Chromium).
func (b *Browser) Close() {
	if b.session != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b.call(ctx, "DELETE", "/session/"+b.session, nil, nil)
		cancel()
	}
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	}
	if b.dataDir != "" {
		os.RemoveAll(b.dataDir)
	}
}
