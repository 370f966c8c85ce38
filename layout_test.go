package lakebase_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The import graph points one way: no sub-package imports the root, and each
// package stays out of the rooms it must not enter (CONTRIBUTING.md).
func TestLayout_ImportGraphPointsOneWay(t *testing.T) {
	const mod = "github.com/lakebase-go/lakebase"
	forbidden := map[string][]string{
		"workspace":  {mod, mod + "/oauth", mod + "/settings", mod + "/storedproc"},
		"oauth":      {mod, mod + "/workspace"},
		"settings":   {mod, mod + "/oauth", mod + "/workspace"},
		"storedproc": {mod, mod + "/oauth", mod + "/settings", mod + "/workspace"},
		// The token pipeline drives the workspace, OAuth and the store for the root.
		"internal/pipeline": {mod, mod + "/storedproc"},
	}
	entries, _ := os.ReadDir("internal")
	for _, e := range entries {
		if e.IsDir() && e.Name() != "pgxsuite" && e.Name() != "pgcluster" && e.Name() != "testenv" && e.Name() != "webdriver" && e.Name() != "pipeline" {
			forbidden["internal/"+e.Name()] = []string{mod, mod + "/oauth", mod + "/settings", mod + "/workspace", mod + "/storedproc"}
		}
	}
	for dir, bad := range forbidden {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(files) == 0 {
			t.Fatalf("%s has no Go files", dir)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, b := range bad {
					if path == b {
						t.Errorf("%s imports %s", f, path)
					}
				}
			}
		}
	}
}

// The connector holds its login by type (the token pipeline; nil for a native
// password, with no implementations that do nothing): no file of the root asserts
// a login to another type or interface.
func TestLayout_TheConnectorNeverAssertsItsLoginsType(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		fset := token.NewFileSet()
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			ta, ok := n.(*ast.TypeAssertExpr)
			if !ok {
				return true
			}
			if sel, ok := ta.X.(*ast.SelectorExpr); ok && (sel.Sel.Name == "login" || sel.Sel.Name == "source" || sel.Sel.Name == "pipe") {
				t.Errorf("%s: a type assertion of the login", fset.Position(ta.Pos()))
			}
			return true
		})
	}
}
