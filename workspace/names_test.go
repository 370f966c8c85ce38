package workspace

import (
	"errors"
	"testing"
)

func TestNames_ParseAndFormatRoundTrip(t *testing.T) {
	e, err := ParseEndpoint("projects/p1/branches/dev/endpoints/ep-1")
	if err != nil {
		t.Fatal(err)
	}
	if e != (EndpointName{Project: "p1", Branch: "dev", ID: "ep-1"}) || e.String() != "projects/p1/branches/dev/endpoints/ep-1" {
		t.Fatalf("endpoint = %#v (%s)", e, e)
	}
	if e.BranchName().String() != "projects/p1/branches/dev" || e.BranchName().ProjectName().String() != "projects/p1" {
		t.Fatalf("parents of %s: %s, %s", e, e.BranchName(), e.BranchName().ProjectName())
	}
	b, err := ParseBranch("projects/p1/branches/dev")
	if err != nil || b.Endpoint("ep-1") != e {
		t.Fatalf("branch = %#v, %v", b, err)
	}
	r, err := ParseRole("projects/p1/branches/dev/roles/0a1b-role")
	if err != nil || r != b.Role("0a1b-role") || r.String() != "projects/p1/branches/dev/roles/0a1b-role" {
		t.Fatalf("role = %#v, %v", r, err)
	}
	for _, s := range []string{"p1", "projects/p1"} {
		p, err := ParseProject(s)
		if err != nil || p.String() != "projects/p1" {
			t.Fatalf("ParseProject(%q) = %v, %v", s, p, err)
		}
	}
}

func TestNames_BranchOfAProjectTakesAnIdOrItsOwnFullName(t *testing.T) {
	p := ProjectName{ID: "p1"}
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"dev", "projects/p1/branches/dev"},
		{"projects/p1/branches/dev", "projects/p1/branches/dev"},
		{"projects/p2/branches/dev", ""},
		{"Dev", ""},
		{"dev/x", ""},
		{"", ""},
	} {
		b, err := p.Branch(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrResourceName) {
				t.Errorf("Branch(%q) = %v, %v; want ErrResourceName", tc.in, b, err)
			}
			continue
		}
		if err != nil || b.String() != tc.want {
			t.Errorf("Branch(%q) = %v, %v; want %s", tc.in, b, err, tc.want)
		}
	}
}

func TestNames_RefuseWhatBreaksTheServiceRule(t *testing.T) {
	for _, s := range []string{
		"", "projects", "projects/", "projects/P", "projects/p/branches", "projects/p/branches/b/endpoints",
		"projects/p/branches/b/endpoints/e/x", "projects/p/branchez/b/endpoints/e", "projects/p/branches/b/endpoints/E",
		"projects/p/branches/../endpoints/e", "projects/p/branches/b%2f/endpoints/e", "/projects/p/branches/b/endpoints/e",
		"projects/1p/branches/b/endpoints/e",
	} {
		if _, err := ParseEndpoint(s); !errors.Is(err, ErrResourceName) {
			t.Errorf("ParseEndpoint(%q): %v, want ErrResourceName", s, err)
		}
	}
	for _, s := range []string{"", "projects/p", "projects/p/branches/", "projects/p/branches/b/", "projects//branches/b"} {
		if _, err := ParseBranch(s); !errors.Is(err, ErrResourceName) {
			t.Errorf("ParseBranch(%q): %v, want ErrResourceName", s, err)
		}
	}
	for _, s := range []string{"", "projects/", "Project", "projects/p/branches/b"} {
		if _, err := ParseProject(s); !errors.Is(err, ErrResourceName) {
			t.Errorf("ParseProject(%q): %v, want ErrResourceName", s, err)
		}
	}
	for _, s := range []string{"projects/p/branches/b/roles/", "projects/p/branches/b/roles/A", "projects/p/branches/b/endpoints/e"} {
		if _, err := ParseRole(s); !errors.Is(err, ErrResourceName) {
			t.Errorf("ParseRole(%q): %v, want ErrResourceName", s, err)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	f.Add("projects/p/branches/b/endpoints/e")
	f.Add("projects/p/branches/b")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		if e.String() != s {
			t.Fatalf("ParseEndpoint(%q).String() = %q", s, e.String())
		}
		if _, err := ResourcePath(s, "endpoints"); err != nil {
			t.Fatalf("ParseEndpoint accepted %q but ResourcePath refuses it: %v", s, err)
		}
	})
}
