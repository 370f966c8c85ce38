package storedproc

import (
	"github.com/lakebase-go/lakebase/internal/textdist"

	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Type is the type of a procedure input.
// Input describes one input of a procedure.
type Input struct {
	Name     string
	Required bool
}

// Procedure describes a virtual stored procedure.
type Procedure struct {
	Name    string
	Inputs  []Input
	Columns []string
}

// The procedures' names.
const (
	GetOAuthAuthorizationURL = "GetOAuthAuthorizationURL"
	GetOAuthAccessToken      = "GetOAuthAccessToken"
	RefreshOAuthAccessToken  = "RefreshOAuthAccessToken"
)

// procedures is the table of intercepted procedures.
var procedures = []*Procedure{
	{
		Name: GetOAuthAuthorizationURL,
		Inputs: []Input{
			{Name: "CallbackUrl"}, {Name: "Scope"}, {Name: "State"},
		},
		Columns: []string{"URL", "State", "PKCEVerifier"},
	},
	{
		Name: GetOAuthAccessToken,
		Inputs: []Input{
			{Name: "Verifier"}, {Name: "CallbackUrl"}, {Name: "Scope"}, {Name: "State"},
			{Name: "PKCEVerifier"}, {Name: "AuthMode"},
		},
		Columns: []string{"OAuthAccessToken", "OAuthRefreshToken", "ExpiresIn"},
	},
	{
		Name: RefreshOAuthAccessToken,
		Inputs: []Input{
			{Name: "OAuthRefreshToken", Required: true},
		},
		Columns: []string{"OAuthAccessToken", "OAuthRefreshToken", "ExpiresIn"},
	},
}

// Lookup returns the procedure with the given name (case-insensitive), or nil.
func Lookup(name string) *Procedure {
	for _, p := range procedures {
		if strings.EqualFold(p.Name, name) {
			return p
		}
	}
	return nil
}

func (p *Procedure) input(name string) *Input {
	for i := range p.Inputs {
		if strings.EqualFold(p.Inputs[i].Name, name) {
			return &p.Inputs[i]
		}
	}
	return nil
}

// ValueKind says what an input's value is in the statement text.
type ValueKind int

// Value kinds.
const (
	Literal    ValueKind = iota // a string or number, in Text
	Null                        // NULL
	Positional                  // ? or $n: argument Ordinal (1-based)
	NamedParam                  // @name: the sql.Named argument Name
)

// Value is an input's value as written.
type Value struct {
	Kind    ValueKind
	Text    string // Literal: the string (unquoted) or the number as written
	Ordinal int    // Positional
	Name    string // NamedParam
}

// Arg is one input of a call.
type Arg struct {
	Input *Input
	Value Value
}

// Call is a parsed EXEC statement of a virtual procedure.
type Call struct {
	Proc *Procedure
	Args []Arg
	// NumPositional is the number of ? and $n placeholders (the highest $n, or the count of ?).
	NumPositional int
}

// Error is a syntax or binding error in a call. Its message names the procedure and
// input; it never holds the value of a secret input.
type Error struct {
	Proc  string
	Input string
	Msg   string
	// Err is what caused the error, when it was not the call itself (errors.Is and
	// errors.As reach it).
	Err error
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Error names the procedure and input.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("lakebase: EXEC ")
	b.WriteString(e.Proc)
	if e.Input != "" {
		b.WriteString(": input ")
		b.WriteString(e.Input)
		b.WriteString(" ")
	} else {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Parse reads query. It returns ok=false, with no error, when query is not a call of
// a virtual procedure and belongs to Postgres. When it is one, it returns the call or
// an error that explains what is wrong with it.
//
// Parse runs on every statement the driver is given, so the common case is told at
// the first byte: a statement that starts with an ASCII letter other than E (SELECT,
// INSERT, BEGIN, ...) is Postgres', with no lexing.
func Parse(query string) (call *Call, ok bool, err error) {
	if len(query) > 0 {
		if c := query[0] | 0x20; c >= 'a' && c <= 'z' && c != 'e' {
			return nil, false, nil
		}
	}
	return parse(query)
}

// parse is Parse without the first-byte shortcut.
func parse(query string) (call *Call, ok bool, err error) {
	l := lexer{s: query}
	l.skipSpace()
	verb := l.word()
	if !strings.EqualFold(verb, "EXEC") && !strings.EqualFold(verb, "EXECUTE") {
		return nil, false, nil
	}
	if !l.skipSpace() {
		return nil, false, nil
	}
	name := l.word()
	proc := Lookup(name)
	if proc == nil {
		// A near miss of one of ours is refused here rather than sent to Postgres,
		// where its arguments (codes, refresh tokens) would land in the server's log.
		if near := nearProcedure(name); near != "" {
			return nil, true, &Error{Proc: name, Msg: fmt.Sprintf("is not a procedure of the driver (did you mean %s?); it was not sent to the database", near)}
		}
		return nil, false, nil
	}
	l.skipSpace()
	if l.peek() == '(' || (l.pos < len(l.s) && !isIdentStart(l.peek()) && l.peek() != '@' && l.peek() != ';') {
		// EXECUTE name(args) is Postgres' EXECUTE of a prepared statement.
		return nil, false, nil
	}
	call = &Call{Proc: proc}
	positional := 0
	seen := map[string]bool{}
	for {
		l.skipSpace()
		if l.pos >= len(l.s) || l.peek() == ';' {
			break
		}
		if len(call.Args) > 0 {
			if l.peek() != ',' {
				return nil, true, &Error{Proc: proc.Name, Msg: fmt.Sprintf("expected ',' between inputs at offset %d", l.pos)}
			}
			l.pos++
			l.skipSpace()
		}
		if l.peek() == '@' {
			l.pos++
		}
		iname := l.word()
		if iname == "" {
			return nil, true, &Error{Proc: proc.Name, Msg: fmt.Sprintf("expected an input name at offset %d", l.pos)}
		}
		in := proc.input(iname)
		if in == nil {
			return nil, true, &Error{Proc: proc.Name, Input: iname, Msg: "is not an input of this procedure (inputs: " + proc.inputNames() + ")"}
		}
		if seen[in.Name] {
			return nil, true, &Error{Proc: proc.Name, Input: in.Name, Msg: "is given twice"}
		}
		seen[in.Name] = true
		l.skipSpace()
		if l.peek() != '=' {
			return nil, true, &Error{Proc: proc.Name, Input: in.Name, Msg: "must be followed by '=' and a value"}
		}
		l.pos++
		l.skipSpace()
		v, err := l.value()
		if err != nil {
			return nil, true, &Error{Proc: proc.Name, Input: in.Name, Msg: err.Error()}
		}
		switch v.Kind {
		case Positional:
			if v.Ordinal == 0 {
				positional++
				v.Ordinal = positional
			}
			call.NumPositional = max(call.NumPositional, v.Ordinal)
		}
		call.Args = append(call.Args, Arg{Input: in, Value: v})
	}
	if l.peek() == ';' {
		l.pos++
	}
	l.skipSpace()
	if l.pos < len(l.s) {
		return nil, true, &Error{Proc: proc.Name, Msg: fmt.Sprintf("unexpected text at offset %d (one call per statement)", l.pos)}
	}
	return call, true, nil
}

func (p *Procedure) inputNames() string {
	names := make([]string, len(p.Inputs))
	for i, in := range p.Inputs {
		names[i] = in.Name
	}
	return strings.Join(names, ", ")
}

// Bind resolves the call's values against the statement's arguments and returns the
// inputs by canonical name; NULL inputs are absent. It checks required inputs and types.
func (c *Call) Bind(args []driver.NamedValue) (map[string]string, error) {
	out := make(map[string]string, len(c.Args))
	for _, a := range c.Args {
		var raw any
		switch a.Value.Kind {
		case Literal:
			out[a.Input.Name] = a.Value.Text
			continue
		case Null:
			continue
		case Positional:
			found := false
			for _, nv := range args {
				if nv.Name == "" && nv.Ordinal == a.Value.Ordinal {
					raw, found = nv.Value, true
					break
				}
			}
			if !found {
				return nil, &Error{Proc: c.Proc.Name, Input: a.Input.Name, Msg: fmt.Sprintf("placeholder %d has no argument (%d given)", a.Value.Ordinal, len(args))}
			}
		case NamedParam:
			found := false
			for _, nv := range args {
				if strings.EqualFold(nv.Name, a.Value.Name) {
					raw, found = nv.Value, true
					break
				}
			}
			if !found {
				return nil, &Error{Proc: c.Proc.Name, Input: a.Input.Name, Msg: fmt.Sprintf("@%s has no sql.Named argument", a.Value.Name)}
			}
		}
		s, isNull, err := toText(raw)
		if err != nil {
			return nil, &Error{Proc: c.Proc.Name, Input: a.Input.Name, Msg: err.Error()}
		}
		if isNull {
			continue
		}
		out[a.Input.Name] = s
	}
	for _, in := range c.Proc.Inputs {
		if _, ok := out[in.Name]; in.Required && !ok {
			return nil, &Error{Proc: c.Proc.Name, Input: in.Name, Msg: "is required"}
		}
	}
	return out, nil
}

func toText(v any) (string, bool, error) {
	if vr, ok := v.(driver.Valuer); ok {
		var err error
		if v, err = vr.Value(); err != nil {
			return "", false, err
		}
	}
	switch x := v.(type) {
	case nil:
		return "", true, nil
	case string:
		return x, false, nil
	case []byte:
		return string(x), false, nil
	case int:
		return strconv.Itoa(x), false, nil
	case int32:
		return strconv.FormatInt(int64(x), 10), false, nil
	case int64:
		return strconv.FormatInt(x, 10), false, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), false, nil
	case bool:
		return strconv.FormatBool(x), false, nil
	case fmt.Stringer:
		return x.String(), false, nil
	}
	return "", false, fmt.Errorf("has an argument of type %T; pass a string or a number", v)
}

type lexer struct {
	s   string
	pos int
}

func (l *lexer) peek() byte {
	if l.pos < len(l.s) {
		return l.s[l.pos]
	}
	return 0
}

// skipSpace skips whitespace and comments; it reports whether it skipped anything.
func (l *lexer) skipSpace() bool {
	start := l.pos
	for l.pos < len(l.s) {
		switch c := l.s[l.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case strings.HasPrefix(l.s[l.pos:], "--"):
			if i := strings.IndexByte(l.s[l.pos:], '\n'); i >= 0 {
				l.pos += i + 1
			} else {
				l.pos = len(l.s)
			}
		case strings.HasPrefix(l.s[l.pos:], "/*"):
			// Postgres block comments nest.
			depth := 0
			for l.pos < len(l.s) {
				if strings.HasPrefix(l.s[l.pos:], "/*") {
					depth++
					l.pos += 2
				} else if strings.HasPrefix(l.s[l.pos:], "*/") {
					depth--
					l.pos += 2
					if depth == 0 {
						break
					}
				} else {
					l.pos++
				}
			}
		default:
			return l.pos > start
		}
	}
	return l.pos > start
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func (l *lexer) word() string {
	start := l.pos
	if l.pos < len(l.s) && isIdentStart(l.s[l.pos]) {
		for l.pos < len(l.s) && isIdent(l.s[l.pos]) {
			l.pos++
		}
	}
	return l.s[start:l.pos]
}

func (l *lexer) value() (Value, error) {
	switch c := l.peek(); {
	case c == '\'':
		l.pos++
		var b strings.Builder
		for l.pos < len(l.s) {
			ch := l.s[l.pos]
			if ch == '\'' {
				if l.pos+1 < len(l.s) && l.s[l.pos+1] == '\'' {
					b.WriteByte('\'')
					l.pos += 2
					continue
				}
				l.pos++
				return Value{Kind: Literal, Text: b.String()}, nil
			}
			b.WriteByte(ch)
			l.pos++
		}
		return Value{}, errors.New("has an unterminated string (close it with ')")
	case c == '?':
		l.pos++
		return Value{Kind: Positional}, nil
	case c == '$':
		l.pos++
		start := l.pos
		for l.pos < len(l.s) && l.s[l.pos] >= '0' && l.s[l.pos] <= '9' {
			l.pos++
		}
		n, err := strconv.Atoi(l.s[start:l.pos])
		if err != nil || n < 1 || n > 65535 {
			return Value{}, errors.New("has a malformed $n placeholder")
		}
		return Value{Kind: Positional, Ordinal: n}, nil
	case c == '@':
		l.pos++
		name := l.word()
		if name == "" {
			return Value{}, errors.New("has '@' without a parameter name")
		}
		return Value{Kind: NamedParam, Name: name}, nil
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		start := l.pos
		l.pos++
		for l.pos < len(l.s) && (l.s[l.pos] >= '0' && l.s[l.pos] <= '9' || l.s[l.pos] == '.' || l.s[l.pos] == 'e' || l.s[l.pos] == 'E') {
			l.pos++
		}
		text := l.s[start:l.pos]
		if _, err := strconv.ParseFloat(text, 64); err != nil {
			return Value{}, errors.New("has a malformed number")
		}
		return Value{Kind: Literal, Text: strings.TrimPrefix(text, "+")}, nil
	case isIdentStart(c):
		start := l.pos
		w := l.word()
		if strings.EqualFold(w, "NULL") {
			return Value{Kind: Null}, nil
		}
		// The word may be a secret typed without quotes: say where, never what.
		return Value{}, fmt.Errorf("has an unquoted word at offset %d; quote strings with '", start)
	}
	return Value{}, errors.New("needs a value: a 'quoted string', a number, NULL, ?, $n or @name")
}

// nearProcedure returns the procedure whose name is within a small edit distance of
// name (but not equal), or "".
func nearProcedure(name string) string {
	if len(name) < 8 {
		return ""
	}
	n := strings.ToLower(name)
	for _, p := range procedures {
		if d := textdist.Levenshtein(n, strings.ToLower(p.Name)); d > 0 && d <= 3 {
			return p.Name
		}
	}
	return ""
}

// Rows is a driver.Rows over a procedure's result, built in memory.
type Rows struct {
	cols []string
	rows [][]driver.Value
	i    int
}

// NewRows returns rows with the given columns and values.
func NewRows(cols []string, rows ...[]driver.Value) *Rows { return &Rows{cols: cols, rows: rows} }

// Columns implements driver.Rows.
func (r *Rows) Columns() []string { return r.cols }

// Close implements driver.Rows.
func (r *Rows) Close() error { r.i = len(r.rows); return nil }

// Next implements driver.Rows.
func (r *Rows) Next(dest []driver.Value) error {
	if r.i >= len(r.rows) {
		return io.EOF
	}
	copy(dest, r.rows[r.i])
	r.i++
	return nil
}
