// Package dbcfg reads the Databricks configuration file (~/.databrickscfg, or
// DATABRICKS_CONFIG_FILE) and selects a profile of it as the Databricks tools do.
package dbcfg

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Profile is one section of the file.
type Profile struct {
	Name, File string
	Values     map[string]string // keys in lower case
}

// ProfileError reports a profile that cannot be used; Name is the profile asked
// for ("" when the file itself could not be read).
type ProfileError struct {
	Name string
	Err  error
}

func (e *ProfileError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *ProfileError) Unwrap() error { return e.Err }

// Select reads the profile named (else DATABRICKS_CONFIG_PROFILE, else the file's
// [__settings__] default_profile, else DEFAULT when it exists); nil when there is
// none. lenient: a missing file or profile is no error even when one was named (the
// Databricks CLI resolves its own profiles).
func Select(name string, getenv func(string) string, lenient bool) (*Profile, error) {
	file := getenv("DATABRICKS_CONFIG_FILE")
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil
		}
		file = filepath.Join(home, ".databrickscfg")
	} else if strings.HasPrefix(file, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			file = filepath.Join(home, file[2:])
		}
	}
	explicit := name != ""
	if !explicit {
		if name = getenv("DATABRICKS_CONFIG_PROFILE"); name != "" {
			explicit = true
		}
	}
	sections, err := readINI(file)
	if errors.Is(err, os.ErrNotExist) {
		if explicit && !lenient {
			return nil, &ProfileError{Name: name, Err: fmt.Errorf("cannot be used: %s does not exist", file)}
		}
		return nil, nil
	}
	if err != nil {
		return nil, &ProfileError{Err: fmt.Errorf("cannot read %s: %w", file, err)}
	}
	if !explicit {
		name = sections["__settings__"]["default_profile"]
		if name == "" {
			name = "DEFAULT"
		}
		if _, ok := sections[name]; !ok {
			return nil, nil
		}
	}
	vals, ok := sections[name]
	if !ok && lenient {
		return nil, nil
	}
	if !ok || name == "__settings__" {
		return nil, &ProfileError{Name: name, Err: fmt.Errorf("is not a profile of %s", file)}
	}
	return &Profile{Name: name, File: file, Values: vals}, nil
}

// readINI reads a .databrickscfg: [section] headers and key = value lines; ; and #
// start comments.
func readINI(path string) (map[string]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' && strings.HasSuffix(line, "]") {
			name := strings.TrimSpace(line[1 : len(line)-1])
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			cur = out[name]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || cur == nil {
			return nil, fmt.Errorf("line %d is not a [section] or key = value", n)
		}
		cur[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return out, sc.Err()
}
