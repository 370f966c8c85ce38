package lakebase

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The documentation's pages: the README and every page of docs/.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md"}, pages...)
}

var (
	fence       = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")
	codeSpan    = regexp.MustCompile("`([^`\n]+)`")
	goLiteral   = regexp.MustCompile(`"((?:[^"\\\n]|\\.)*)"`)
	goConcat    = regexp.MustCompile(`"\s*\+\s*"`)
	shellQuoted = regexp.MustCompile(`(?:LAKEBASE_DSN[=:] ?|-dsn )['"]([^'"\n]+)['"]`)
	// A connection string starts with a property's name as the property table
	// writes it (AuthScheme, DatabricksInstance, ...).
	dsnStart = regexp.MustCompile(`^(?:jdbc:(?:cdata:)?lakebase:)?([A-Z][A-Za-z]*)=`)
	// A placeholder the reader fills in: ..., <something>, $VAR, ${{ expr }}.
	placeholder = regexp.MustCompile(`([A-Za-z]+)=(\.\.\.|<[^;>]*>|\$\{\{[^}]*\}\}|\$[A-Z_]+)`)
)

// examples maps a property to a value that stands for the reader's own.
var examples = map[string]string{
	"DatabricksInstance": "dbc-1234.cloud.databricks.com", "Endpoint": "projects/p/branches/main/endpoints/ep",
	"Instance": "my-instance", "Project": "p", "Branch": "main", "Server": "db.example.com", "User": "app",
	"AzureTenant": "00000000-0000-0000-0000-000000000000", "Port": "5432", "OIDCTokenFile": "/tmp/token",
}

// docConnectionStrings finds every connection string of a page: the lines of plain
// code blocks, string literals of Go blocks (joined where they are concatenated),
// LAKEBASE_DSN values of shell and YAML blocks, and code spans of the text.
func docConnectionStrings(page string) []docDSN {
	var found []docDSN
	whole := true
	add := func(s string) {
		s = strings.TrimSpace(s)
		if m := dsnStart.FindStringSubmatch(s); m != nil && isProperty(m[1]) && canonicalName(m[1]) == m[1] {
			found = append(found, docDSN{s, whole && strings.Contains(s, "AuthScheme=")})
		}
	}
	text := fence.ReplaceAllStringFunc(page, func(block string) string {
		m := fence.FindStringSubmatch(block)
		switch lang, body := m[1], m[2]; lang {
		case "":
			for _, l := range strings.Split(body, "\n") {
				add(l)
			}
		case "go":
			for _, lit := range goLiteral.FindAllStringSubmatch(goConcat.ReplaceAllString(body, ""), -1) {
				add(lit[1])
			}
		default: // sh, yaml
			for _, q := range shellQuoted.FindAllStringSubmatch(body, -1) {
				add(q[1])
			}
		}
		return ""
	})
	whole = false
	for _, m := range codeSpan.FindAllStringSubmatch(text, -1) {
		add(m[1])
	}
	return found
}

// docDSN is a connection string of the docs: a whole one (a code block's line that
// names its AuthScheme), or a fragment shown in the text (Pooled=true).
type docDSN struct {
	text  string
	whole bool
}

// completed completes a fragment into a whole connection string; the fragment's own
// properties win, as the last duplicate does.
func completed(fragment string) string {
	base := "AuthScheme=OAuthClient;DatabricksInstance=dbc-1234.cloud.databricks.com;" +
		"OAuthClientId=client;OAuthClientSecret=secret;User=app;"
	if !regexp.MustCompile(`(?i)(^|;)\s*(Endpoint|Instance|Project|Branch|Server)\s*=`).MatchString(fragment) {
		base += "Endpoint=projects/p/branches/main/endpoints/ep;"
	}
	if regexp.MustCompile(`AuthScheme=Password`).MatchString(fragment) {
		base += "Server=db.example.com;"
	}
	return base + fragment
}

// refusedInTheDocs are the strings the docs show as refused; they must stay refused.
var refusedInTheDocs = map[string]bool{
	"Password=ab;CD=x": true, // the rest of an unquoted password
	"SSLMode=disable":  true, // refused whenever a token is the password
	"UseSSL=false":     true,
}

// fillIn replaces the placeholders of a documented connection string by values of
// the right shape.
func fillIn(dsn string) string {
	return placeholder.ReplaceAllStringFunc(dsn, func(pair string) string {
		name := pair[:strings.IndexByte(pair, '=')]
		v, ok := examples[name]
		if !ok {
			v = "x"
		}
		return name + "=" + v
	})
}

// TestDocs_EveryConnectionStringParses keeps the docs and the grammar together: a
// connection string shown anywhere in the README or docs/ parses, once the reader's
// placeholders are filled in.
func TestDocs_EveryConnectionStringParses(t *testing.T) {
	noEnv := envOf(map[string]string{"DATABRICKS_CONFIG_FILE": filepath.Join(t.TempDir(), "none")})
	total := 0
	for _, path := range docPages(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docConnectionStrings(string(b)) {
			total++
			s := fillIn(d.text)
			if !d.whole {
				s = completed(s)
			}
			_, err := parseDSN(s, noEnv)
			switch {
			case refusedInTheDocs[d.text] && err == nil:
				t.Errorf("%s: %s is shown as refused, but it parses", path, d.text)
			case !refusedInTheDocs[d.text] && err != nil:
				t.Errorf("%s: %s\n\tdoes not parse: %v", path, d.text, err)
			}
		}
	}
	if total < 40 {
		t.Fatalf("found only %d connection strings in the docs: the extraction is broken", total)
	}
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#+ (.*)$`)
	notAnchor = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
)

func anchorOf(heading string) string {
	return strings.ReplaceAll(notAnchor.ReplaceAllString(strings.ToLower(heading), ""), " ", "-")
}

// TestDocs_EveryLinkLeadsSomewhere: every relative link of the README and docs/ names
// a file that exists and, with a #fragment, a heading of that file.
func TestDocs_EveryLinkLeadsSomewhere(t *testing.T) {
	for _, path := range docPages(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(link, "#")
			target := path
			if file != "" {
				target = filepath.Join(filepath.Dir(path), file)
			}
			tb, err := os.ReadFile(target)
			if err != nil {
				if fi, serr := os.Stat(target); serr == nil && fi.IsDir() && frag == "" {
					continue
				}
				t.Errorf("%s: link %s: %v", path, link, err)
				continue
			}
			if frag == "" {
				continue
			}
			ok := false
			for _, h := range mdHeading.FindAllStringSubmatch(string(tb), -1) {
				if anchorOf(h[1]) == frag {
					ok = true
					break
				}
			}
			if !ok {
				t.Errorf("%s: link %s: %s has no heading #%s", path, link, target, frag)
			}
		}
	}
}

// isProperty reports whether name is a property's name or alias.
func isProperty(name string) bool {
	_, ok := props.Lookup(name)
	return ok
}
