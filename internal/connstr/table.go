package connstr

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/internal/textdist"
)

// Prop is one property of a configuration C: its name and aliases, whether it is a
// secret, how it is set and written back, and where else it may come from when a
// connection string leaves it out.
type Prop[C any] struct {
	Name    string
	Aliases []string
	Secret  bool
	Set     func(c *C, v string) error
	Get     func(c *C) string // "" = not written back
	// PgEnv is the Postgres variable, Env the Databricks variable, Profile the
	// ~/.databrickscfg key that fill it ("" for none).
	PgEnv, Env, Profile string
}

// From names where else p may come from: a PG* variable, a DATABRICKS_* (or ARM_*)
// variable, a ~/.databrickscfg key ("" for none).
func (p Prop[C]) From(pgEnv, env, profile string) Prop[C] {
	p.PgEnv, p.Env, p.Profile = pgEnv, env, profile
	return p
}

// Str is a property holding a string.
func Str[C any](name string, secret bool, field func(*C) *string, aliases ...string) Prop[C] {
	return Prop[C]{Name: name, Aliases: aliases, Secret: secret,
		Set: func(c *C, v string) error { *field(c) = v; return nil },
		Get: func(c *C) string { return *field(c) }}
}

// OptInt is a property holding a count from 0 up; unset is nil.
func OptInt[C any](name string, field func(*C) **int, aliases ...string) Prop[C] {
	return Prop[C]{Name: name, Aliases: aliases,
		Set: func(c *C, v string) error {
			if v == "" {
				*field(c) = nil
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1<<20 {
				return fmt.Errorf("must be a number from 0 to %d", 1<<20)
			}
			*field(c) = &n
			return nil
		},
		Get: func(c *C) string {
			if p := *field(c); p != nil {
				return strconv.Itoa(*p)
			}
			return ""
		}}
}

// Seconds is a property holding a number of seconds up to a day; 0 is unset.
func Seconds[C any](name string, field func(*C) *time.Duration) Prop[C] {
	return Prop[C]{Name: name,
		Set: func(c *C, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 24*3600 {
				return fmt.Errorf("must be a number of seconds from 0 to 86400")
			}
			*field(c) = time.Duration(n) * time.Second
			return nil
		},
		Get: func(c *C) string {
			if d := *field(c); d > 0 {
				return strconv.FormatInt(int64(d/time.Second), 10)
			}
			return ""
		}}
}

// Bool is a true/false property whose default is false.
func Bool[C any](name string, field func(*C) *bool) Prop[C] {
	return Prop[C]{Name: name,
		Set: func(c *C, v string) error {
			b, err := ParseBool(v)
			*field(c) = b
			return err
		},
		Get: func(c *C) string {
			if *field(c) {
				return "true"
			}
			return ""
		}}
}

// ParseBool reads true or false, in any case; "" is false.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, fmt.Errorf("must be true or false")
}

// ParseBoolDefault is ParseBool with def for an empty value.
func ParseBoolDefault(v string, def bool) (bool, error) {
	if v == "" {
		return def, nil
	}
	return ParseBool(v)
}

// Key folds case and removes spaces: "Auth Scheme" and "authscheme" are the same name.
func Key(s string) string {
	s = strings.ToLower(s)
	if strings.ContainsAny(s, " \t") {
		s = strings.Join(strings.Fields(s), "")
	}
	return s
}

// Table finds a configuration's properties by name, as written in any case and
// spacing, and the names accepted for compatibility that have no effect.
type Table[C any] struct {
	Props   []Prop[C]
	byKey   map[string]*Prop[C]
	ignored []string
	ignKey  map[string]string
}

// NewTable indexes props (and their aliases) and the ignored names.
func NewTable[C any](props []Prop[C], ignored []string) *Table[C] {
	t := &Table[C]{Props: props, byKey: map[string]*Prop[C]{}, ignored: ignored, ignKey: map[string]string{}}
	for i := range props {
		p := &props[i]
		t.byKey[Key(p.Name)] = p
		for _, a := range p.Aliases {
			t.byKey[Key(a)] = p
		}
	}
	for _, n := range ignored {
		t.ignKey[Key(n)] = n
	}
	return t
}

// Lookup finds the property of name.
func (t *Table[C]) Lookup(name string) (*Prop[C], bool) {
	p, ok := t.byKey[Key(name)]
	return p, ok
}

// Ignored returns the canonical spelling of an ignored name.
func (t *Table[C]) Ignored(name string) (string, bool) {
	n, ok := t.ignKey[Key(name)]
	return n, ok
}

// IgnoredNames lists the ignored names, sorted.
func (t *Table[C]) IgnoredNames() []string {
	out := append([]string(nil), t.ignored...)
	sort.Strings(out)
	return out
}

// Near reports whether name is within a small edit distance of a property's name.
func (t *Table[C]) Near(name string) bool {
	key := Key(name)
	for i := range t.Props {
		if textdist.Levenshtein(key, Key(t.Props[i].Name)) <= 2 {
			return true
		}
	}
	return false
}

// Suggest returns ` (did you mean "X"?)` for the known name nearest to name, or ""
// when none is near.
func (t *Table[C]) Suggest(name string) string {
	key := Key(name)
	best, bestD := "", 1<<30
	consider := func(canon string) {
		d := textdist.Levenshtein(key, Key(canon))
		if d < bestD || (d == bestD && canon < best) {
			best, bestD = canon, d
		}
	}
	for i := range t.Props {
		consider(t.Props[i].Name)
		for _, a := range t.Props[i].Aliases {
			consider(a)
		}
	}
	if best == "" || bestD > max(3, len(key)/2) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// Pairs lists the properties of c that are set, in the table's order, then the
// extra pairs sorted by name; a secret's value is mask unless mask is "".
func (t *Table[C]) Pairs(c *C, mask string, extra map[string]string) []Pair {
	var out []Pair
	for i := range t.Props {
		p := &t.Props[i]
		v := p.Get(c)
		if v == "" {
			continue
		}
		if p.Secret && mask != "" {
			v = mask
		}
		out = append(out, Pair{p.Name, v})
	}
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, Pair{n, extra[n]})
	}
	return out
}

// Format writes pairs as a connection string that Parse reads back to them.
func Format(pairs []Pair) string {
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(p.Name + "=" + Quote(p.Value))
	}
	return b.String()
}
