package connstr

import (
	"strings"
	"testing"
)

var rules = Rules{
	IsSecret:     func(n string) bool { return strings.EqualFold(n, "Password") },
	PropertyName: func(seg string) (string, bool) { return seg, strings.EqualFold(seg, "Server") },
}

func TestSplit_QuotesAndSeparators(t *testing.T) {
	pairs, err := Split(`jdbc:lakebase:A=1; B = 'x;y''z' ;C="say ""hi""";;D=`, rules)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{{"A", "1"}, {"B", "x;y'z"}, {"C", `say "hi"`}, {"D", ""}}
	if len(pairs) != len(want) {
		t.Fatalf("%q", pairs)
	}
	for i := range want {
		if pairs[i] != want[i] {
			t.Fatalf("pair %d: %q, want %q", i, pairs[i], want[i])
		}
	}
}

func TestSplit_ErrorsNeverQuoteASecret(t *testing.T) {
	for _, s := range []string{"Password='hunter2", "Password='hunter2' x", "A=1;hunter2;B=2"} {
		_, err := Split(s, rules)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := Split("A=1;Server;B=2", rules); err == nil || !strings.Contains(err.Error(), "Server has no '='") {
		t.Fatalf("a property name with no '=': %v", err)
	}
}

func TestURLPairs_PartsThenQuery(t *testing.T) {
	pairs, err := URLPairs("lakebase://u:p%40ss@h.example:5433/db?b=2&a=1")
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, p := range pairs {
		got += p.Name + "=" + p.Value + ";"
	}
	if got != "User=u;Password=p@ss;Server=h.example;Port=5433;Database=db;a=1;b=2;" {
		t.Fatal(got)
	}
	if _, err := URLPairs("lakebase://u:secret@h/a/b"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a path of two segments: %v", err)
	}
}

func TestForeign_PostgresFormsNamed(t *testing.T) {
	kw := func(k string) bool { return k == "host" || k == "dbname" || k == "password" }
	for s, want := range map[string]string{
		"postgres://u:p@h/db":        "PostgreSQL URL",
		"host=h dbname=d password=p": "libpq",
		"Server=h;Database=d":        "",
		"host=h":                     "",
		"lakebase://h/db":            "",
	} {
		if got := Foreign(s, kw); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("%q: %q, want %q", s, got, want)
		}
	}
}

// FuzzQuote: a quoted value reads back unchanged, whatever it holds.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", " a", "a;b", "it's", `"q"`, "''", ";;", "\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		pairs, err := Split("A=1;B="+Quote(v)+";C=2", rules)
		if err != nil {
			t.Fatalf("%q quoted as %q: %v", v, Quote(v), err)
		}
		if len(pairs) != 3 || pairs[1].Value != v || pairs[2] != (Pair{"C", "2"}) {
			t.Fatalf("%q quoted as %q read back as %q", v, Quote(v), pairs)
		}
	})
}
