// Package sqlscan reads PostgreSQL statement text as PostgreSQL's lexer does, far
// enough to find the function calls in it: string literals ('...' with a doubled
// quote for a quote, E'...' with backslash escapes too, $tag$...$tag$ dollar
// quotes, U&'...', B'...', X'...', N'...') and comments (-- to the end of the line, and nested
// /* */) are skipped; identifiers are read as PostgreSQL reads them (unquoted ones
// folded to lower case, "quoted" ones kept with "" as one quote, U&"..." ones with
// their \XXXX and \+XXXXXX escapes decoded, UESCAPE included).
//
// A call is an identifier, optionally qualified (schema.name), followed by '('.
// That is what PostgreSQL's grammar calls a function in an expression or a FROM
// clause; it also matches type modifiers (numeric(10, 2)) and a few keywords
// followed by a parenthesis (IN (...), VALUES (...)), which a caller looking for
// particular function names can ignore.
//
// The text is read with standard_conforming_strings on (PostgreSQL's default since
// 9.1): in '...' a backslash is an ordinary character. SQL built and run inside the
// server (EXECUTE in PL/pgSQL, a function that calls another) is out of its reach.
// Text PostgreSQL would refuse (an unterminated literal, a bad escape) is read as
// far as it goes and never makes the scan fail.
package sqlscan

import (
	"strings"
	"unicode/utf8"
)

// Call is one function call found in statement text.
type Call struct {
	// Schema is the qualifier written before the name ("" when none): for
	// pg_catalog.pg_advisory_lock(1), "pg_catalog"; for a.b.c(1), "b".
	Schema string
	// Name is the function's name as PostgreSQL resolves it: folded to lower case
	// when unquoted, as written when quoted, with U& escapes decoded.
	Name string
	// Pos is the byte offset in the text where the (possibly qualified) name begins.
	Pos int
}

// Calls returns the calls in sql, in the order they appear.
func Calls(sql string) []Call {
	var calls []Call
	EachCall(sql, func(c Call) bool {
		calls = append(calls, c)
		return true
	})
	return calls
}

// EachCall calls fn with each call in sql, in the order they appear, until fn
// returns false.
func EachCall(sql string, fn func(Call) bool) {
	s := scanner{src: sql}
	var cur Call
	have, afterDot := false, false
	for {
		t := s.next()
		switch t.kind {
		case tokEOF:
			return
		case tokIdent:
			if have && afterDot {
				cur = Call{Schema: cur.Name, Name: t.name, Pos: cur.Pos}
			} else {
				cur = Call{Name: t.name, Pos: t.start}
			}
			have, afterDot = true, false
		case tokDot:
			if have && !afterDot {
				afterDot = true
			} else {
				have, afterDot = false, false
			}
		case tokLParen:
			if have && !afterDot && !fn(cur) {
				return
			}
			have, afterDot = false, false
		default:
			have, afterDot = false, false
		}
	}
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokDot
	tokLParen
	tokOther // a literal, a number, a parameter, an operator or other punctuation
)

type token struct {
	kind  tokKind
	start int
	name  string // tokIdent: the identifier as PostgreSQL reads it
}

type scanner struct {
	src string
	pos int
}

func (s *scanner) peek(n int) byte {
	if s.pos+n < len(s.src) {
		return s.src[s.pos+n]
	}
	return 0
}

// skipSpace skips white space and comments.
func (s *scanner) skipSpace() {
	for s.pos < len(s.src) {
		switch c := s.src[s.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			s.pos++
		case c == '-' && s.peek(1) == '-':
			if i := strings.IndexByte(s.src[s.pos:], '\n'); i >= 0 {
				s.pos += i + 1
			} else {
				s.pos = len(s.src)
			}
		case c == '/' && s.peek(1) == '*':
			s.skipBlockComment()
		default:
			return
		}
	}
}

// skipBlockComment skips a /* */ comment, which nests in PostgreSQL.
func (s *scanner) skipBlockComment() {
	depth := 0
	for s.pos < len(s.src) {
		switch {
		case s.src[s.pos] == '/' && s.peek(1) == '*':
			depth++
			s.pos += 2
		case s.src[s.pos] == '*' && s.peek(1) == '/':
			depth--
			s.pos += 2
			if depth == 0 {
				return
			}
		default:
			s.pos++
		}
	}
}

func (s *scanner) next() token {
	s.skipSpace()
	if s.pos >= len(s.src) {
		return token{kind: tokEOF, start: s.pos}
	}
	start := s.pos
	c := s.src[s.pos]
	switch {
	case (c == 'u' || c == 'U') && s.peek(1) == '&' && s.peek(2) == '\'':
		s.pos += 2
		s.skipString(false)
		return token{kind: tokOther, start: start}
	case (c == 'u' || c == 'U') && s.peek(1) == '&' && s.peek(2) == '"':
		s.pos += 2
		raw := s.quoted()
		return token{kind: tokIdent, start: start, name: decodeUnicode(raw, s.uescape())}
	case (c == 'e' || c == 'E') && s.peek(1) == '\'':
		s.pos++
		s.skipString(true)
		return token{kind: tokOther, start: start}
	case c == '\'':
		s.skipString(false)
		return token{kind: tokOther, start: start}
	case c == '"':
		return token{kind: tokIdent, start: start, name: s.quoted()}
	case isIdentStart(c):
		for s.pos < len(s.src) && isIdentCont(s.src[s.pos]) {
			s.pos++
		}
		return token{kind: tokIdent, start: start, name: foldASCII(s.src[start:s.pos])}
	case c == '$':
		s.dollar()
		return token{kind: tokOther, start: start}
	case isDigit(c) || (c == '.' && isDigit(s.peek(1))):
		s.number()
		return token{kind: tokOther, start: start}
	case c == '.':
		s.pos++
		return token{kind: tokDot, start: start}
	case c == '(':
		s.pos++
		return token{kind: tokLParen, start: start}
	}
	s.pos++
	return token{kind: tokOther, start: start}
}

// skipString skips a '...' literal starting at s.pos: a doubled quote is a quote
// inside it, and with backslashes (E'...') so is \' (a backslash escapes the next
// character).
func (s *scanner) skipString(backslashes bool) {
	s.pos++ // the opening quote
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case '\\':
			if backslashes {
				s.pos++
			}
		case '\'':
			if s.peek(1) != '\'' {
				s.pos++
				return
			}
			s.pos++
		}
		s.pos++
	}
	s.pos = len(s.src)
}

// quoted reads a "..." identifier starting at s.pos and returns its text with ""
// read as one quote.
func (s *scanner) quoted() string {
	s.pos++ // the opening quote
	start := s.pos
	doubled := false
	for s.pos < len(s.src) {
		if s.src[s.pos] == '"' {
			if s.peek(1) != '"' {
				body := s.src[start:s.pos]
				s.pos++
				if doubled {
					return strings.ReplaceAll(body, `""`, `"`)
				}
				return body
			}
			doubled = true
			s.pos++
		}
		s.pos++
	}
	s.pos = len(s.src)
	return strings.ReplaceAll(s.src[start:], `""`, `"`)
}

// uescape reads an optional UESCAPE 'c' after a U&"..." identifier and returns the
// escape character (a backslash without one). Anything else is left unread.
func (s *scanner) uescape() byte {
	save := s.pos
	s.skipSpace()
	const kw = "uescape"
	if len(s.src)-s.pos >= len(kw) && strings.EqualFold(s.src[s.pos:s.pos+len(kw)], kw) &&
		(s.pos+len(kw) == len(s.src) || !isIdentCont(s.src[s.pos+len(kw)])) {
		s.pos += len(kw)
		s.skipSpace()
		if s.pos+2 < len(s.src) && s.src[s.pos] == '\'' && s.src[s.pos+2] == '\'' {
			esc := s.src[s.pos+1]
			s.pos += 3
			return esc
		}
	}
	s.pos = save
	return '\\'
}

// dollar reads what starts with '$': a parameter ($1), a dollar-quoted literal
// ($$...$$, $tag$...$tag$), or a lone '$'.
func (s *scanner) dollar() {
	start := s.pos
	s.pos++
	if isDigit(s.peek(0)) {
		for s.pos < len(s.src) && isDigit(s.src[s.pos]) {
			s.pos++
		}
		return
	}
	i := s.pos
	if i < len(s.src) && isIdentStart(s.src[i]) {
		for i < len(s.src) && isIdentCont(s.src[i]) && s.src[i] != '$' {
			i++
		}
	}
	if i >= len(s.src) || s.src[i] != '$' {
		return // a lone '$'
	}
	tag := s.src[start : i+1]
	body := i + 1
	if end := strings.Index(s.src[body:], tag); end >= 0 {
		s.pos = body + end + len(tag)
	} else {
		s.pos = len(s.src)
	}
}

// number reads a numeric constant: digits, a fraction, an exponent. Letters after
// it are left to be read as an identifier.
func (s *scanner) number() {
	for s.pos < len(s.src) && isDigit(s.src[s.pos]) {
		s.pos++
	}
	if s.peek(0) == '.' && s.peek(1) != '.' {
		s.pos++
		for s.pos < len(s.src) && isDigit(s.src[s.pos]) {
			s.pos++
		}
	}
	if c := s.peek(0); c == 'e' || c == 'E' {
		n := 1
		if d := s.peek(1); d == '+' || d == '-' {
			n = 2
		}
		if isDigit(s.peek(n)) {
			s.pos += n
			for s.pos < len(s.src) && isDigit(s.src[s.pos]) {
				s.pos++
			}
		}
	}
}

// decodeUnicode decodes the escapes of a U&"..." identifier's text with escape
// character esc: esc followed by 4 hex digits or by '+' and 6, esc esc for esc
// itself, and UTF-16 surrogate pairs joined. PostgreSQL refuses an identifier with a
// bad escape; such an escape is kept as written.
func decodeUnicode(raw string, esc byte) string {
	if strings.IndexByte(raw, esc) < 0 {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); {
		if raw[i] != esc {
			b.WriteByte(raw[i])
			i++
			continue
		}
		if i+1 < len(raw) && raw[i+1] == esc {
			b.WriteByte(esc)
			i += 2
			continue
		}
		r, n := unicodeEscape(raw[i+1:])
		if n == 0 {
			b.WriteByte(raw[i])
			i++
			continue
		}
		i += 1 + n
		if r >= 0xD800 && r <= 0xDBFF && i < len(raw) && raw[i] == esc {
			if lo, m := unicodeEscape(raw[i+1:]); m > 0 && lo >= 0xDC00 && lo <= 0xDFFF {
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 1 + m
			}
		}
		if r == 0 || !utf8.ValidRune(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unicodeEscape reads XXXX or +XXXXXX (hex) at the start of s: the code point and
// how many bytes it took (0: not an escape).
func unicodeEscape(s string) (rune, int) {
	digits, skip := 4, 0
	if len(s) > 0 && s[0] == '+' {
		digits, skip = 6, 1
	}
	if len(s) < skip+digits {
		return 0, 0
	}
	var r rune
	for _, c := range []byte(s[skip : skip+digits]) {
		var v byte
		switch {
		case isDigit(c):
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, 0
		}
		r = r<<4 | rune(v)
	}
	return r, skip + digits
}

// foldASCII lower-cases the ASCII letters of an unquoted identifier, as PostgreSQL
// does in a UTF-8 database; it allocates only when there is an upper-case letter.
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }
