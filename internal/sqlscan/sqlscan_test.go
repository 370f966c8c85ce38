package sqlscan

import (
	"reflect"
	"strings"
	"testing"
)

// Only identifiers followed by '(' outside literals and comments are calls, with
// their names as PostgreSQL reads them.
func TestCalls_OnlyCallsOutsideLiteralsAndComments(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want []string // schema.name, or name
	}{
		// Calls, however they are written.
		{"SELECT pg_advisory_lock(1)", []string{"pg_advisory_lock"}},
		{"select PG_TRY_ADVISORY_LOCK(7)", []string{"pg_try_advisory_lock"}},
		{"SELECT pg_advisory_lock (1)", []string{"pg_advisory_lock"}},
		{"SELECT pg_advisory_lock/* a comment */(1)", []string{"pg_advisory_lock"}},
		{"SELECT pg_advisory_lock -- a comment\n(1)", []string{"pg_advisory_lock"}},
		{"SELECT pg_catalog.pg_advisory_lock(1)", []string{"pg_catalog.pg_advisory_lock"}},
		{"SELECT PG_CATALOG . pg_advisory_lock(1)", []string{"pg_catalog.pg_advisory_lock"}},
		{`SELECT "pg_catalog"."pg_advisory_lock"(1)`, []string{"pg_catalog.pg_advisory_lock"}},
		{"SELECT db.pg_catalog.pg_advisory_lock(1)", []string{"pg_catalog.pg_advisory_lock"}},
		{`SELECT "pg_advisory_lock"(1)`, []string{"pg_advisory_lock"}},
		{`SELECT "PG_ADVISORY_LOCK"(1)`, []string{"PG_ADVISORY_LOCK"}}, // quoted: not folded
		{`SELECT U&"pg_\0061dvisory_lock"(1)`, []string{"pg_advisory_lock"}},
		{`SELECT u&"pg_\+000061dvisory_lock"(1)`, []string{"pg_advisory_lock"}},
		{`SELECT U&"pg_!0061dvisory_lock" UESCAPE '!'(1)`, []string{"pg_advisory_lock"}},
		{`SELECT U&"pg_!0061dvisory_lock" /* c */ uescape '!' (1)`, []string{"pg_advisory_lock"}},
		{`SELECT U&"a\\b\D83D\DE00"(1)`, []string{`a\b` + "\U0001F600"}},
		{`SELECT "we""ird"(1)`, []string{`we"ird`}},
		{"SELECT $1, pg_advisory_lock($1)", []string{"pg_advisory_lock"}},
		{"SELECT 1.5e3, pg_advisory_lock(2)", []string{"pg_advisory_lock"}},
		{"SELECT 1pg_advisory_lock(2)", []string{"pg_advisory_lock"}},
		{"SELECT f(g(1), h (2))", []string{"f", "g", "h"}},
		{"SELECT * FROM pg_advisory_lock(1)", []string{"pg_advisory_lock"}},
		{"SELECT 'a''', pg_advisory_lock(1), 'b'", []string{"pg_advisory_lock"}},
		{`SELECT 'a\', pg_advisory_lock(1) --'`, []string{"pg_advisory_lock"}},
		{`SELECT E'a\'', pg_advisory_lock(1)`, []string{"pg_advisory_lock"}},
		{"SELECT $$x$$, pg_advisory_lock(1)", []string{"pg_advisory_lock"}},
		{"SELECT a$b(1)", []string{"a$b"}},
		{"SELECT x/*/**/*/, pg_advisory_lock(1)", []string{"pg_advisory_lock"}},
		{"SELECT pg_advisory_xact_lock(1)", []string{"pg_advisory_xact_lock"}},

		// Not calls: literals, comments, quoted names, columns, a name without '('.
		{"SELECT 'advisory_lock'", nil},
		{"SELECT 'pg_advisory_lock(1)'", nil},
		{"SELECT 'it''s pg_advisory_lock(1)'", nil},
		{`SELECT E'\' pg_advisory_lock(1)'`, nil},
		{`SELECT e'\\', 'pg_advisory_lock(1)'`, nil},
		{`SELECT U&'pg_advisory_lock(1)'`, nil},
		{`SELECT N'pg_advisory_lock(1)', X'00', B'1'`, nil},
		{"SELECT $$pg_advisory_lock(1)$$", nil},
		{"SELECT $fn$ $$ pg_advisory_lock(1) $$ $fn$", nil},
		{"SELECT $a$ pg_advisory_lock(1) $a$", nil},
		{"SELECT 1 -- takes pg_advisory_lock(1)", nil},
		{"SELECT 1 /* takes pg_advisory_lock(1) */", nil},
		{"SELECT 1 /* nested /* pg_advisory_lock(1) */ still pg_advisory_lock(1) */", nil},
		{`SELECT count(*) AS "Advisory_Locks_Count"`, []string{"count"}},
		{`SELECT count(*) AS "pg_advisory_lock"`, []string{"count"}},
		{"SELECT advisory_lock_id FROM locks", nil},
		{"SELECT pg_advisory_lock FROM t", nil},
		{"SELECT t.pg_advisory_lock FROM t", nil},
		{"SELECT 1.(2)", nil},
		{"SELECT 'unterminated pg_advisory_lock(1)", nil},
		{"SELECT /* unterminated pg_advisory_lock(1)", nil},
		{"SELECT $q$ unterminated pg_advisory_lock(1)", nil},
		{`SELECT "unterminated pg_advisory_lock(1)`, nil},
		{"", nil},
	} {
		var got []string
		for _, c := range Calls(tc.sql) {
			if c.Schema != "" {
				got = append(got, c.Schema+"."+c.Name)
			} else {
				got = append(got, c.Name)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: calls %q, want %q", tc.sql, got, tc.want)
		}
	}
}

// A call's position is where its name, qualified or not, begins.
func TestCalls_PositionIsWhereTheNameBegins(t *testing.T) {
	sql := `SELECT 1, pg_catalog.f(2), "g"(3), U&"h"(4)`
	var got []string
	for _, c := range Calls(sql) {
		got = append(got, sql[c.Pos:c.Pos+3])
	}
	if want := []string{"pg_", `"g"`, `U&"`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls begin at %q, want %q", got, want)
	}
}

// EachCall stops when its function returns false.
func TestEachCall_StopsWhenAsked(t *testing.T) {
	n := 0
	EachCall("SELECT f(1), g(2), h(3)", func(Call) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("%d calls seen after asking to stop at the second", n)
	}
}

// The scan never panics, always ends, and reports calls whose position is in the
// text and whose name is not empty unless it was written quoted.
func FuzzCalls(f *testing.F) {
	for _, s := range []string{
		"SELECT pg_advisory_lock(1)", `SELECT U&"pg_\0061dvisory_lock"(1)`, `U&"!+01F600" UESCAPE '!'(`,
		"SELECT $a$ x $a$, $$y$$, $1", "/* /* */ */ f(", "E'\\'' g(", `"a""b".c(`, "1.5e+3x(", "U&", "$", "'",
		`U&"\D83D\DE00"(`, `U&"\D83D"(`, "a . b . c (",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		for _, c := range Calls(sql) {
			if c.Pos < 0 || c.Pos >= len(sql) {
				t.Fatalf("position %d outside %d bytes", c.Pos, len(sql))
			}
			if c.Name == "" && !strings.ContainsAny(sql[c.Pos:], `"`) {
				t.Fatalf("an empty unquoted name at %d", c.Pos)
			}
		}
	})
}
