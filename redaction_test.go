package lakebase_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/settings"
	"github.com/lakebase-go/lakebase/storedproc"
	"github.com/lakebase-go/lakebase/workspace"
)

// secretField names the string fields that hold a secret; notSecret the fields
// whose names match but hold none.
var (
	secretField = regexp.MustCompile(`(?i)(secret|password|verifier|accesstoken$|refreshtoken$|^token$|^code$)`)
	notSecret   = map[string]bool{"TokenError.Code": true} // an RFC 6749 error code
)

func isSecret(typeName, field string) bool {
	return secretField.MatchString(field) && !notSecret[typeName+"."+field]
}

// samples has a value of every exported type that holds a secret, in every
// package. TestRedaction_EveryExportedTypeWithASecret finds those types in the
// source and fails when one is missing here, so a new one cannot slip by.
var samples = map[string]any{
	"lakebase.Config":                 &lakebase.Config{},
	"lakebase.Login":                  &lakebase.Login{},
	"lakebase.Authorization":          &lakebase.Authorization{},
	"lakebase.CodeExchange":           &lakebase.CodeExchange{},
	"lakebase.DiscoveryAuthorization": &lakebase.DiscoveryAuthorization{},
	"oauth.TokenClient":               &oauth.TokenClient{},
	"settings.StoredToken":            &settings.StoredToken{},
	"settings.Pending":                &settings.Pending{},
	"oauth.Source":                    &oauth.Source{Client: &oauth.TokenClient{}},
	"workspace.DatabaseCredential":    &workspace.DatabaseCredential{},
	"settings.StoredCredential":       &settings.StoredCredential{},
	"oauth.EntraSource":               &oauth.EntraSource{},
	"lakebasetest.ServicePrincipal":   &lakebasetest.ServicePrincipal{},
}

// exportedSecretTypes parses the packages' sources and lists "pkg.Type" for every
// exported struct type with a secret field.
func exportedSecretTypes(t *testing.T) []string {
	var out []string
	for pkg, dir := range map[string]string{"lakebase": ".", "oauth": "oauth", "storedproc": "storedproc", "lakebasetest": "lakebasetest", "workspace": "workspace", "settings": "settings"} {
		fset := token.NewFileSet()
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(af, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok || !ts.Name.IsExported() {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return true
				}
				for _, fld := range st.Fields.List {
					id, ok := fld.Type.(*ast.Ident)
					if !ok || id.Name != "string" {
						continue
					}
					for _, name := range fld.Names {
						if name.IsExported() && isSecret(ts.Name.Name, name.Name) {
							out = append(out, pkg+"."+ts.Name.Name)
							return true
						}
					}
				}
				return true
			})
		}
	}
	sort.Strings(out)
	return slicesCompact(out)
}

func slicesCompact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// fill sets every secret field of v (a pointer to a struct), recursively, to a
// distinct marker and returns the markers.
func fill(v reflect.Value, markers *[]string) {
	v = reflect.Indirect(v)
	if v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch {
		case f.Kind() == reflect.String && isSecret(v.Type().Name(), sf.Name):
			m := fmt.Sprintf("MARKER%dSECRET", len(*markers))
			*markers = append(*markers, m)
			f.SetString(m)
		case f.Kind() == reflect.Pointer && !f.IsNil():
			fill(f, markers)
		case f.Kind() == reflect.Struct:
			fill(f.Addr(), markers)
		}
	}
}

func TestRedaction_EveryExportedTypeWithASecret(t *testing.T) {
	for _, name := range exportedSecretTypes(t) {
		if _, ok := samples[name]; !ok {
			t.Errorf("%s holds a secret but has no sample in redaction_test.go: add one (and make its fmt forms hide it)", name)
		}
	}
	for name, ptr := range samples {
		var markers []string
		fill(reflect.ValueOf(ptr), &markers)
		if len(markers) == 0 {
			t.Errorf("%s: no secret field was filled", name)
			continue
		}
		val := reflect.ValueOf(ptr).Elem().Interface()
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			for _, x := range []any{ptr, val, []any{val}, map[string]any{"k": ptr}} {
				out := fmt.Sprintf(verb, x)
				for _, m := range markers {
					if strings.Contains(out, m) {
						t.Errorf("%s: %s shows a secret: %s", name, verb, out)
					}
				}
			}
		}
	}
}

// Errors that may carry a secret value print their message in every verb.
func TestRedaction_Errors(t *testing.T) {
	errs := []error{
		&lakebase.ConfigError{Property: "Password", Value: "MARKERSECRET", Secret: true, Err: errors.New("bad")},
		&oauth.TokenError{Op: "refresh_token", StatusCode: 400, Code: "invalid_grant", Err: errors.New("x")},
		&storedproc.Error{Proc: "RefreshOAuthAccessToken", Input: "OAuthRefreshToken", Msg: "is required"},
	}
	for _, e := range errs {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, e); strings.Contains(out, "MARKER") {
				t.Errorf("%T %s: %s", e, verb, out)
			}
		}
	}
	// The parsers never quote the text of a malformed segment.
	for _, dsn := range []string{
		"AuthScheme=Password;Server=localhost;User=u;OAuthClientSecret:MARKER1",
		"AuthScheme=Password;Server=localhost;User=u;Password=ab;MARKER2",
		"AuthScheme=Password;Server=localhost;User=u;Password='x'MARKER3",
	} {
		if _, err := lakebase.ParseDSN(dsn); err == nil || strings.Contains(err.Error(), "MARKER") {
			t.Errorf("%q: %v", dsn, err)
		}
	}
	for _, q := range []string{"EXEC RefreshOAuthAccessToken OAuthRefreshToken=MARKER4", "EXEC GetOAuthAccessTokn Verifier='MARKER5'"} {
		if _, _, err := storedproc.Parse(q); err == nil || strings.Contains(err.Error(), "MARKER") {
			t.Errorf("%q: %v", q, err)
		}
	}
}
