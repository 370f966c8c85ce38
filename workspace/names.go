package workspace

import (
	"fmt"
	"strings"
)

// The Lakebase Autoscaling resources are named by paths: projects/<p>,
// projects/<p>/branches/<b>, projects/<p>/branches/<b>/endpoints/<e> and
// projects/<p>/branches/<b>/roles/<r>. The types below parse such a name once,
// check every id against the service's rule, and format it back; nothing else in
// the module splits or joins these paths by hand.

// ProjectName names an Autoscaling project (projects/<p>).
type ProjectName struct {
	ID string
}

// BranchName names an Autoscaling branch (projects/<p>/branches/<b>).
type BranchName struct {
	Project string
	ID      string
}

// EndpointName names an Autoscaling endpoint (projects/<p>/branches/<b>/endpoints/<e>).
type EndpointName struct {
	Project string
	Branch  string
	ID      string
}

// RoleName names an Autoscaling role (projects/<p>/branches/<b>/roles/<r>).
type RoleName struct {
	Project string
	Branch  string
	ID      string
}

// ParseProject reads a project id ("p") or name ("projects/p").
func ParseProject(s string) (ProjectName, error) {
	id := strings.TrimPrefix(s, "projects/")
	if !resourceID.MatchString(id) {
		return ProjectName{}, nameError(s, "a project id (1-63 lowercase letters, digits and hyphens, starting with a letter) or projects/<project>")
	}
	return ProjectName{ID: id}, nil
}

// ParseBranch reads a branch's full name, projects/<p>/branches/<b>.
func ParseBranch(s string) (BranchName, error) {
	p, ok := segments(s, "projects", "branches")
	if !ok {
		return BranchName{}, nameError(s, "projects/<project>/branches/<branch>")
	}
	return BranchName{Project: p[0], ID: p[1]}, nil
}

// ParseEndpoint reads an endpoint's full name,
// projects/<p>/branches/<b>/endpoints/<e>.
func ParseEndpoint(s string) (EndpointName, error) {
	p, ok := segments(s, "projects", "branches", "endpoints")
	if !ok {
		return EndpointName{}, nameError(s, "projects/<project>/branches/<branch>/endpoints/<endpoint>")
	}
	return EndpointName{Project: p[0], Branch: p[1], ID: p[2]}, nil
}

// ParseRole reads a role's full name, projects/<p>/branches/<b>/roles/<r>.
func ParseRole(s string) (RoleName, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 6 || parts[4] != "roles" || !roleID.MatchString(parts[5]) {
		return RoleName{}, nameError(s, "projects/<project>/branches/<branch>/roles/<role>")
	}
	b, err := ParseBranch(strings.Join(parts[:4], "/"))
	if err != nil {
		return RoleName{}, nameError(s, "projects/<project>/branches/<branch>/roles/<role>")
	}
	return RoleName{Project: b.Project, Branch: b.ID, ID: parts[5]}, nil
}

// Branch names the branch id, or full branch name, s of project p. A full name must
// be of p.
func (p ProjectName) Branch(s string) (BranchName, error) {
	if strings.HasPrefix(s, "projects/") {
		b, err := ParseBranch(s)
		if err != nil {
			return BranchName{}, err
		}
		if b.Project != p.ID {
			return BranchName{}, nameError(s, "a branch of "+p.String())
		}
		return b, nil
	}
	if !resourceID.MatchString(s) {
		return BranchName{}, nameError(s, "a branch id (1-63 lowercase letters, digits and hyphens, starting with a letter) or projects/<project>/branches/<branch>")
	}
	return BranchName{Project: p.ID, ID: s}, nil
}

// String formats the name: projects/<p>.
func (p ProjectName) String() string { return "projects/" + p.ID }

// String formats the name: projects/<p>/branches/<b>.
func (b BranchName) String() string { return "projects/" + b.Project + "/branches/" + b.ID }

// ProjectName is the branch's project.
func (b BranchName) ProjectName() ProjectName { return ProjectName{ID: b.Project} }

// Endpoint names the endpoint id of the branch.
func (b BranchName) Endpoint(id string) EndpointName {
	return EndpointName{Project: b.Project, Branch: b.ID, ID: id}
}

// Role names the role id of the branch.
func (b BranchName) Role(id string) RoleName {
	return RoleName{Project: b.Project, Branch: b.ID, ID: id}
}

// String formats the name: projects/<p>/branches/<b>/endpoints/<e>.
func (e EndpointName) String() string { return e.BranchName().String() + "/endpoints/" + e.ID }

// BranchName is the endpoint's branch.
func (e EndpointName) BranchName() BranchName { return BranchName{Project: e.Project, ID: e.Branch} }

// String formats the name: projects/<p>/branches/<b>/roles/<r>.
func (r RoleName) String() string { return r.BranchName().String() + "/roles/" + r.ID }

// BranchName is the role's branch.
func (r RoleName) BranchName() BranchName { return BranchName{Project: r.Project, ID: r.Branch} }

// segments splits s as kinds[0]/<id>/kinds[1]/<id>/... and checks every id.
func segments(s string, kinds ...string) ([]string, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 2*len(kinds) {
		return nil, false
	}
	ids := make([]string, len(kinds))
	for i, k := range kinds {
		if parts[2*i] != k || !resourceID.MatchString(parts[2*i+1]) {
			return nil, false
		}
		ids[i] = parts[2*i+1]
	}
	return ids, true
}

func nameError(s, want string) error {
	return fmt.Errorf("%w: %q is not %s", ErrResourceName, s, want)
}
