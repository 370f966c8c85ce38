package pgxsuite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lakebase-go/lakebase/internal/pgcluster"
	"github.com/lakebase-go/lakebase/internal/testenv"
)

// skipMark is how the lakebase copy skips a test that exercises pgx's own connector
// options (stdlib.OptionOpenDB), which a lakebase connection does not take.
const skipMark = "lakebase-suite: uses stdlib.OptionOpenDB"

// The edits that turn pgx's suite into one that runs through lakebase. Each must
// apply exactly: a new pgx release that moves the code fails here, on purpose.
var edits = []struct{ old, new string }{
	{ // every openDB(t) of the suite opens the lakebase driver
		"\tconfig, err := pgx.ParseConfig(os.Getenv(\"PGX_TEST_DATABASE\"))\n\trequire.NoError(t, err)\n\treturn stdlib.OpenDB(*config, opts...)\n",
		"\tif len(opts) > 0 {\n\t\tt.Skip(\"" + skipMark + "\")\n\t}\n\tdb, err := sql.Open(\"lakebase\", os.Getenv(\"LAKEBASE_SUITE_DSN\"))\n\trequire.NoError(t, err)\n\treturn db\n",
	},
	{ // the exec-mode matrix goes through QueryExecMode
		"\t\t\t\tconfig, err := pgx.ParseConfig(os.Getenv(\"PGX_TEST_DATABASE\"))\n\t\t\t\trequire.NoError(t, err)\n\n\t\t\t\tconfig.DefaultQueryExecMode = mode\n\t\t\t\tdb := stdlib.OpenDB(*config)\n",
		"\t\t\t\tdb, err := sql.Open(\"lakebase\", os.Getenv(\"LAKEBASE_SUITE_DSN\")+\";QueryExecMode=\"+mode.String())\n\t\t\t\trequire.NoError(t, err)\n",
	},
	{ // sql.Open by name
		"sql.Open(\"pgx\", os.Getenv(\"PGX_TEST_DATABASE\"))",
		"sql.Open(\"lakebase\", os.Getenv(\"LAKEBASE_SUITE_DSN\"))",
	},
	{ // Raw: the documented interface instead of pgx's concrete type
		"driverConn.(*stdlib.Conn).Conn()",
		"driverConn.(interface{ Conn() *pgx.Conn }).Conn()",
	},
	{
		"import (\n",
		"import (\n\t_ \"github.com/lakebase-go/lakebase\"\n",
	},
}

type result struct{ action, output string }

func TestPgxStdlibSuiteThroughLakebase(t *testing.T) {
	testenv.NeedPostgres(t)
	if testing.Short() {
		t.Skip("builds and runs pgx's suite twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/jackc/pgx/v5").Output()
	require.NoError(t, err, "finding pgx in the module cache")
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "stdlib", "sql_test.go"))
	require.NoError(t, err)

	pg, err := pgcluster.Start(ctx)
	require.NoError(t, err)
	defer pg.Stop()
	const db, role, pw = "pgx_suite", "pgx_suite", "suite-pw"
	require.NoError(t, pg.CreateDatabase(ctx, db))
	require.NoError(t, pg.CreateRole(ctx, role, pw, db))
	require.NoError(t, pg.Exec(ctx, "", "ALTER ROLE "+role+" SUPERUSER"))

	pgxDSN := fmt.Sprintf("host=localhost port=%d user=%s password=%s dbname=%s sslmode=verify-full sslrootcert=%s", pg.Port, role, pw, db, pg.CAFile)
	lbDSN := fmt.Sprintf("AuthScheme=Password;Server=localhost;Port=%d;User=%s;Password=%s;Database=%s;SSLMode=verify-full;SSLServerCert=%s", pg.Port, role, pw, db, pg.CAFile)

	lakebaseSrc := string(src)
	for _, e := range edits {
		if n := strings.Count(lakebaseSrc, e.old); n == 0 {
			t.Fatalf("pgx's suite changed: %q is not in it; update the edits", e.old)
		}
		lakebaseSrc = strings.ReplaceAll(lakebaseSrc, e.old, e.new)
	}
	if strings.Contains(lakebaseSrc, "PGX_TEST_DATABASE\"))\n\treturn stdlib.OpenDB") {
		t.Fatal("openDB still opens pgx")
	}

	env := append(os.Environ(), "PGX_TEST_DATABASE="+pgxDSN, "LAKEBASE_SUITE_DSN="+lbDSN)
	results := map[string]map[string]result{}
	for name, code := range map[string]string{"pgx": string(src), "lakebase": lakebaseSrc} {
		dir, err := os.MkdirTemp(".", "run-"+name+"-")
		require.NoError(t, err)
		defer os.RemoveAll(dir)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "sql_test.go"), []byte(code), 0o644))
		cmd := exec.CommandContext(ctx, "go", "test", "-json", "-count=1", "-timeout=6m", "./"+dir)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, _ := cmd.Output() // a failing test is a result, compared below
		results[name] = parse(stdout)
		if len(results[name]) == 0 {
			t.Fatalf("%s: the suite did not run: %s", name, stderr.String())
		}
	}

	var names []string
	for n := range results["pgx"] {
		names = append(names, n)
	}
	sort.Strings(names)
	counts := map[string]int{}
	skippedForOptions := 0
	for _, n := range names {
		p, l := results["pgx"][n], results["lakebase"][n]
		counts[p.action]++
		if l.action == "skip" && strings.Contains(l.output, skipMark) {
			skippedForOptions++
			continue
		}
		if p.action != l.action {
			t.Errorf("%s: %s through pgx, %s through lakebase\n%s", n, p.action, l.action, l.output)
		}
	}
	for n := range results["lakebase"] {
		if _, ok := results["pgx"][n]; !ok {
			t.Errorf("%s ran through lakebase only", n)
		}
	}
	t.Logf("pgx %s stdlib suite: %d tests and subtests (%d pass, %d skip, %d fail through pgx); through lakebase the same, except %d that test pgx's own connector options",
		"v5", len(names), counts["pass"], counts["skip"], counts["fail"], skippedForOptions)
	if counts["pass"] < 40 {
		t.Fatalf("only %d tests passed through pgx: the suite did not really run", counts["pass"])
	}
}

// parse reads go test -json output into each test's final action and its output.
func parse(b []byte) map[string]result {
	out := map[string]result{}
	var outputs = map[string]*strings.Builder{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" {
			continue
		}
		switch ev.Action {
		case "output":
			if outputs[ev.Test] == nil {
				outputs[ev.Test] = &strings.Builder{}
			}
			outputs[ev.Test].WriteString(ev.Output)
		case "pass", "fail", "skip":
			o := ""
			if outputs[ev.Test] != nil {
				o = outputs[ev.Test].String()
			}
			out[ev.Test] = result{ev.Action, o}
		}
	}
	return out
}
