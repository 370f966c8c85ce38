package storedproc

import (
	"database/sql"
	"database/sql/driver"
	"strings"
	"testing"
)

func TestParse_Intercepted(t *testing.T) {
	cases := []struct {
		q    string
		proc string
		args map[string]Value
	}{
		{"EXEC GetOAuthAuthorizationURL", GetOAuthAuthorizationURL, nil},
		{"exec getoauthauthorizationurl;", GetOAuthAuthorizationURL, nil},
		{"  -- comment\n /* block /* nested */ */ EXECUTE GetOAuthAuthorizationURL CallbackUrl='http://localhost:8020', Scope = 'all-apis'  ;  ",
			GetOAuthAuthorizationURL, map[string]Value{"CallbackUrl": {Kind: Literal, Text: "http://localhost:8020"}, "Scope": {Kind: Literal, Text: "all-apis"}}},
		{"EXEC GetOAuthAccessToken @Verifier='it''s', State=?, PKCEVerifier=$3, AuthMode=@mode, CallbackUrl=NULL",
			GetOAuthAccessToken, map[string]Value{
				"Verifier":     {Kind: Literal, Text: "it's"},
				"State":        {Kind: Positional, Ordinal: 1},
				"PKCEVerifier": {Kind: Positional, Ordinal: 3},
				"AuthMode":     {Kind: NamedParam, Name: "mode"},
				"CallbackUrl":  {Kind: Null},
			}},
		{"EXEC RefreshOAuthAccessToken OAuthRefreshToken=42", RefreshOAuthAccessToken, map[string]Value{"OAuthRefreshToken": {Kind: Literal, Text: "42"}}},
	}
	for _, tc := range cases {
		call, ok, err := Parse(tc.q)
		if !ok || err != nil {
			t.Fatalf("Parse(%q) = ok %v, err %v", tc.q, ok, err)
		}
		if call.Proc.Name != tc.proc || len(call.Args) != len(tc.args) {
			t.Fatalf("Parse(%q) = %s with %d args", tc.q, call.Proc.Name, len(call.Args))
		}
		for _, a := range call.Args {
			if want := tc.args[a.Input.Name]; a.Value != want {
				t.Fatalf("%q: %s = %+v, want %+v", tc.q, a.Input.Name, a.Value, want)
			}
		}
	}
}

func TestParse_LeftToPostgres(t *testing.T) {
	for _, q := range []string{
		"SELECT 1",
		"EXECUTE myplan(1)",
		"EXECUTE myplan",
		"EXECUTE GetOAuthAuthorizationURL(1, 2)",
		"CALL GetOAuthAuthorizationURL()",
		"SELECT * FROM GetOAuthAccessToken",
		"EXECGetOAuthAuthorizationURL",
		"EXEC",
		"",
		"/* EXEC GetOAuthAuthorizationURL */ SELECT 1",
		"exec_sql GetOAuthAuthorizationURL",
	} {
		if _, ok, err := Parse(q); ok || err != nil {
			t.Fatalf("Parse(%q) intercepted it (err %v)", q, err)
		}
	}
}

func TestParse_Errors(t *testing.T) {
	cases := map[string]string{
		"EXEC GetOAuthAuthorizationURL Bogus='x'":                  "Bogus is not an input",
		"EXEC GetOAuthAuthorizationURL Scope='x' State='y'":        "expected ','",
		"EXEC GetOAuthAuthorizationURL Scope":                      "must be followed by '='",
		"EXEC GetOAuthAuthorizationURL Scope='unterminated":        "unterminated string",
		"EXEC GetOAuthAuthorizationURL Scope=bare":                 "unquoted word at offset 36",
		"EXEC GetOAuthAuthorizationURL Scope='a', Scope='b'":       "given twice",
		"EXEC GetOAuthAuthorizationURL Scope='a'; SELECT 1":        "unexpected text",
		"EXEC GetOAuthAuthorizationURL Scope=$0":                   "malformed $n",
		"EXEC GetOAuthAuthorizationURL Scope=@":                    "without a parameter name",
		"EXEC GetOAuthAuthorizationURL Scope=":                     "needs a value",
		"EXEC GetOAuthAuthorizationURL Scope=1.2.3":                "malformed number",
		"EXEC RefreshOAuthAccessToken OAuthRefreshToken='secret'x": "expected ','",
	}
	for q, want := range cases {
		_, ok, err := Parse(q)
		if !ok || err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q) = ok %v, err %v; want %q", q, ok, err, want)
		}
	}
	// Errors never show a secret input's value.
	_, _, err := Parse("EXEC RefreshOAuthAccessToken OAuthRefreshToken='s3cret' junk")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}

func TestBind(t *testing.T) {
	call, _, _ := Parse("EXEC GetOAuthAccessToken Verifier=?, State=@st, PKCEVerifier=$2, CallbackUrl=NULL, Scope='s'")
	in, err := call.Bind([]driver.NamedValue{
		{Ordinal: 1, Value: "code"}, {Ordinal: 2, Value: int64(7)}, {Name: "st", Ordinal: 3, Value: "state"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if in["Verifier"] != "code" || in["PKCEVerifier"] != "7" || in["State"] != "state" || in["Scope"] != "s" {
		t.Fatalf("bound %v", in)
	}
	if _, ok := in["CallbackUrl"]; ok {
		t.Fatal("NULL input bound")
	}
	if _, err := call.Bind(nil); err == nil || !strings.Contains(err.Error(), "placeholder 1 has no argument") {
		t.Fatalf("missing argument: %v", err)
	}
	r, _, _ := Parse("EXEC RefreshOAuthAccessToken OAuthRefreshToken=?")
	if _, err := r.Bind([]driver.NamedValue{{Ordinal: 1, Value: nil}}); err == nil || !strings.Contains(err.Error(), "OAuthRefreshToken is required") {
		t.Fatalf("required: %v", err)
	}
	if _, err := r.Bind([]driver.NamedValue{{Ordinal: 1, Value: sql.NullString{String: "x", Valid: true}}}); err != nil {
		t.Fatalf("driver.Valuer: %v", err)
	}
	if _, err := r.Bind([]driver.NamedValue{{Ordinal: 1, Value: struct{}{}}}); err == nil || !strings.Contains(err.Error(), "type") {
		t.Fatalf("type error: %v", err)
	}
}

func TestRows(t *testing.T) {
	r := NewRows([]string{"a", "b"}, []driver.Value{"x", int64(1)})
	dest := make([]driver.Value, 2)
	if err := r.Next(dest); err != nil || dest[0] != "x" {
		t.Fatal(err)
	}
	if err := r.Next(dest); err == nil {
		t.Fatal("second row")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"EXEC GetOAuthAuthorizationURL", "EXECUTE GetOAuthAccessToken Verifier='a''b', State=?, AuthMode=@m;",
		"EXECUTE myplan(1)", "CALL p()", "-- x\nEXEC RefreshOAuthAccessToken OAuthRefreshToken=$1",
		"/* /* */ */ exec getoauthaccesstoken verifier=-1.5e3", "EXEC GetOAuthAuthorizationURL Scope='",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		call, ok, err := Parse(q)
		// The first-byte shortcut never decides otherwise than the lexer.
		if _, lok, lerr := parse(q); lok != ok || (lerr == nil) != (err == nil) {
			t.Fatalf("Parse says ok=%v err=%v, the lexer ok=%v err=%v", ok, err, lok, lerr)
		}
		if !ok {
			if err != nil || call != nil {
				t.Fatalf("not intercepted but err=%v call=%v", err, call)
			}
			return
		}
		if err != nil {
			if call != nil {
				t.Fatal("error with a call")
			}
			_ = err.Error()
			return
		}
		if call.Proc == nil || Lookup(call.Proc.Name) != call.Proc {
			t.Fatalf("malformed call %+v", call)
		}
		seen := map[string]bool{}
		for _, a := range call.Args {
			if a.Input == nil || call.Proc.input(a.Input.Name) != a.Input || seen[a.Input.Name] {
				t.Fatalf("bad input %+v", a)
			}
			seen[a.Input.Name] = true
			if a.Value.Kind == Positional && (a.Value.Ordinal < 1 || a.Value.Ordinal > call.NumPositional) {
				t.Fatalf("bad ordinal %+v", a.Value)
			}
		}
	})
}

// Parse's first-byte shortcut (a statement starting with a letter other than E is
// Postgres') decides every leading byte as the lexer does; a call after a comment
// is still found.
func TestParse_FirstByteShortcutAgreesWithTheLexer(t *testing.T) {
	for c := byte(0); c < 128; c++ {
		for _, rest := range []string{"XEC GetOAuthAuthorizationURL", "xecute GetOAuthAccessToken Verifier='x'", "ELECT 1", ""} {
			q := string(c) + rest
			call, ok, err := Parse(q)
			lcall, lok, lerr := parse(q)
			if ok != lok || (err == nil) != (lerr == nil) || (call == nil) != (lcall == nil) {
				t.Errorf("%q: Parse ok=%v err=%v, the lexer ok=%v err=%v", q, ok, err, lok, lerr)
			}
		}
	}
	if _, ok, _ := Parse("/* x */ EXEC GetOAuthAuthorizationURL"); !ok {
		t.Error("a call after a comment was not intercepted")
	}
}

// A near miss of a procedure name is refused, not sent to Postgres with its (secret)
// arguments; a name far from ours still goes to Postgres.
func TestParse_MisspelledProcedureRefused(t *testing.T) {
	for _, q := range []string{
		"EXEC GetOAuthAccessTokn @Verifier='SECRET-CODE'",
		"exec getoauthauthorizationurl2",
		"EXECUTE RefreshOAuthAccesToken OAuthRefreshToken='SECRET-RT'",
	} {
		_, ok, err := Parse(q)
		if !ok || err == nil || !strings.Contains(err.Error(), "did you mean") || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("%s: ok=%v err=%v", q, ok, err)
		}
	}
	for _, q := range []string{"EXECUTE myplan(1)", "EXEC sp_who", "EXECUTE get_oauth_things"} {
		if _, ok, err := Parse(q); ok || err != nil {
			t.Fatalf("%s: ok=%v err=%v", q, ok, err)
		}
	}
}
