package workspace

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// APIError is an error answer of a Databricks REST API (credential minting, lookups,
// SCIM), or a failure to reach it.
type APIError struct {
	Op         string // e.g. "mint Autoscaling credential"
	StatusCode int
	ErrorCode  string // Databricks error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Message    string
	Err        error
	wait       time.Duration
}

// RetryAfter is how long the service asked to wait before another attempt.
func (e *APIError) RetryAfter() time.Duration { return e.wait }

// Error gives the API's error code and message.
func (e *APIError) Error() string {
	msg := "lakebase: " + e.Op + ": "
	switch {
	case e.ErrorCode != "" || e.Message != "":
		msg += fmt.Sprintf("%s: %s (HTTP %d)", e.ErrorCode, e.Message, e.StatusCode)
	case e.StatusCode != 0:
		msg += fmt.Sprintf("HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	case e.Err != nil:
		msg += e.Err.Error() + httpx.TransportHint(e.Err)
	}
	if e.StatusCode == http.StatusForbidden {
		msg += "; the identity may lack permission on the database"
	}
	return msg
}

// Unwrap returns the transport cause.
func (e *APIError) Unwrap() error { return e.Err }

// Format prints Error for every verb.
func (e *APIError) Format(f fmt.State, _ rune) { io.WriteString(f, e.Error()) }

// Temporary reports whether retrying may help.
func (e *APIError) Temporary() bool {
	return httpx.TransportFailure(e.StatusCode, e.Err) || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// temporary is implemented by errors worth retrying.
type temporary interface{ Temporary() bool }

// ErrResourceName is matched by an error about a resource name (a project, branch,
// endpoint, operation or instance) that breaks the service's rules; such a name is
// never sent.
var ErrResourceName = errors.New("lakebase: malformed resource name")

var (
	// resourceID is the service's rule for project, branch and endpoint ids: 1 to 63
	// lowercase letters, digits and hyphens, starting with a letter.
	resourceID = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// Operation ids are the service's own; only safe characters are accepted.
	operationID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	// Provisioned instance names: letters, digits and hyphens.
	instanceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)
)

// ValidResourceID reports whether id follows the service's rule for project, branch
// and endpoint ids.
func ValidResourceID(id string) bool { return resourceID.MatchString(id) }

// ValidInstanceName reports whether name can be a Provisioned instance's name.
func ValidInstanceName(name string) bool { return instanceName.MatchString(name) }

// collections are the resource kinds of the postgres API, and what may follow each.
var collections = map[string]map[string]bool{
	"":          {"projects": true},
	"projects":  {"branches": true, "operations": true},
	"branches":  {"endpoints": true, "operations": true, "roles": true, "databases": true},
	"endpoints": {"operations": true},
	"roles":     {"operations": true},
	"databases": {"operations": true},
}

// ResourcePath checks a resource name of the postgres API (projects/<p>,
// projects/<p>/branches/<b>, .../endpoints/<e>, .../operations/<o>, ...) against the
// service's rules and returns it as a URL path below /api/2.0/postgres/, every
// segment escaped. kinds, when given, are the kinds the name may be of (the last
// collection: "branches", "endpoints", ...).
func ResourcePath(name string, kinds ...string) (string, error) {
	parts := strings.Split(name, "/")
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q %s", ErrResourceName, name, why)
	}
	if len(parts) < 2 || len(parts)%2 != 0 {
		return bad("is not a resource name (projects/<project>[/branches/<branch>[/endpoints/<endpoint>]])")
	}
	prev := ""
	escaped := make([]string, len(parts))
	for i := 0; i < len(parts); i += 2 {
		kind, id := parts[i], parts[i+1]
		if !collections[prev][kind] {
			return bad("has " + strconv.Quote(kind) + " where it cannot be")
		}
		ok := resourceID.MatchString(id)
		switch kind {
		case "operations":
			ok = operationID.MatchString(id)
		case "roles":
			ok = roleID.MatchString(id) // RFC 1123: an application id may start with a digit
		}
		if !ok {
			return bad("has an id that breaks the service's rule (1-63 lowercase letters, digits and hyphens, starting with a letter)")
		}
		escaped[i], escaped[i+1] = kind, url.PathEscape(id)
		prev = kind
	}
	if len(kinds) > 0 && !slices.Contains(kinds, prev) {
		return bad("is not a resource of kind " + strings.Join(kinds, " or "))
	}
	return "/api/2.0/postgres/" + strings.Join(escaped, "/"), nil
}

// ErrRoleNotFound is matched by a RoleMatchError for a name no role has exactly
// (Postgres role names are case-sensitive: "robert" is not "Robert").
var ErrRoleNotFound = errors.New("lakebase: no role of that name")

// ErrAmbiguousRole is matched by a RoleMatchError for a name that more than one
// role could be meant by: no role has exactly that name and several differ from
// it only in case, or the service listed several roles under that one name.
var ErrAmbiguousRole = errors.New("lakebase: more than one role could be meant")

// RoleMatchError reports a role name that FindRole or FindInstanceRole could not
// match to exactly one role. It names the candidates; it never guesses.
type RoleMatchError struct {
	Name  string // the name asked for
	Where string // "branch projects/<p>/branches/<b>", "instance <name>", or ""
	// Candidates are the roles that could be meant: the Postgres names that differ
	// from Name only in case, or (when several roles have exactly Name) their
	// resource names.
	Candidates []string
	// Ambiguous: more than one role could be meant (errors.Is ErrAmbiguousRole);
	// else no role has Name (errors.Is ErrRoleNotFound).
	Ambiguous bool
	// SameName: the service listed several roles of exactly Name (Candidates are
	// their resource names).
	SameName bool
}

// Error names the role asked for, where, and the candidates.
func (e *RoleMatchError) Error() string {
	where := ""
	if e.Where != "" {
		where = " on " + e.Where
	}
	quoted := make([]string, len(e.Candidates))
	for i, c := range e.Candidates {
		quoted[i] = strconv.Quote(c)
	}
	list := strings.Join(quoted, ", ")
	switch {
	case e.SameName:
		return fmt.Sprintf("lakebase: role %q%s is ambiguous: the service lists more than one role of that name (%s); nothing was done", e.Name, where, list)
	case e.Ambiguous:
		return fmt.Sprintf("lakebase: role %q%s is ambiguous: no role has exactly that name, and %s differ from it only in case "+
			"(Postgres role names are case-sensitive); name one exactly", e.Name, where, list)
	case len(e.Candidates) > 0:
		return fmt.Sprintf("lakebase: no role %q%s (Postgres role names are case-sensitive; %s differs from it only in case: name it exactly if it is the one meant)",
			e.Name, where, list)
	}
	return fmt.Sprintf("lakebase: no role %q%s", e.Name, where)
}

// Is makes errors.Is(err, ErrAmbiguousRole) or errors.Is(err, ErrRoleNotFound) true.
func (e *RoleMatchError) Is(target error) bool {
	if e.Ambiguous {
		return target == ErrAmbiguousRole
	}
	return target == ErrRoleNotFound
}

// ErrRoleExists is matched by a RoleExistsError: a role create was answered
// ALREADY_EXISTS after an earlier attempt's answer was lost, and the role of that
// name is not the one asked for (someone else made it differently), or could not
// be read back to tell. The role was left as it is.
var ErrRoleExists = errors.New("lakebase: a role of that name exists and is not the one asked for")

// RoleExistsError reports a role create whose retry was answered ALREADY_EXISTS
// after the answer of an earlier attempt (which may have made the role) was lost,
// when the role there is not the one asked for. It names the differences, or
// wraps the failure to read the role back.
type RoleExistsError struct {
	Name        string   // the Postgres role name asked for
	Where       string   // "branch projects/<p>/branches/<b>" or "instance <name>"
	Differences []string // "identity_type GROUP, asked USER", ...
	Err         error    // why the role could not be read back, when it could not
}

// Error names the role, where, and how it differs from the one asked for.
func (e *RoleExistsError) Error() string {
	msg := fmt.Sprintf("lakebase: create role %q on %s: the service says it exists, after the answer of an earlier attempt was lost", e.Name, e.Where)
	if e.Err != nil {
		return msg + ", and it cannot be read back to tell whether it is the one asked for: " + e.Err.Error() + "; check the role (lakebase role list) before creating it again"
	}
	return msg + "; the role there is not the one asked for (" + strings.Join(e.Differences, "; ") +
		"): someone else made it; it was left as it is"
}

// Is makes errors.Is(err, ErrRoleExists) true.
func (e *RoleExistsError) Is(target error) bool { return target == ErrRoleExists }

// Unwrap returns the read-back failure, if any.
func (e *RoleExistsError) Unwrap() error { return e.Err }

// ErrBranchExists is matched by a BranchExistsError: a branch create was answered
// ALREADY_EXISTS after an earlier attempt's answer was lost, and the branch of that
// name is not the one asked for (made from another source, before the create
// began or with another lifetime, or deleted and made again while Wait polled it),
// or could not be read back to tell. The branch was left as it is.
var ErrBranchExists = errors.New("lakebase: a branch of that name exists and is not the one asked for")

// BranchExistsError reports a branch create whose retry was answered
// ALREADY_EXISTS after the answer of an earlier attempt (which may have made the
// branch) was lost, when the branch there is not the one asked for. It names the
// differences, or wraps the failure to read the branch back.
type BranchExistsError struct {
	Name        string   // projects/<p>/branches/<b>
	Differences []string // "source_branch projects/p/branches/dev, asked projects/p/branches/main", ...
	Err         error    // why the branch could not be read back, when it could not
}

// Error names the branch and how it differs from the one asked for.
func (e *BranchExistsError) Error() string {
	msg := "lakebase: create branch " + e.Name + ": the service says it exists, after the answer of an earlier attempt was lost"
	if e.Err != nil {
		return msg + ", and it cannot be read back to tell whether it is the one asked for: " + e.Err.Error() + "; check the branch (lakebase branch list) before creating it again"
	}
	return msg + "; the branch there is not the one asked for (" + strings.Join(e.Differences, "; ") +
		"): someone else made it; it was left as it is"
}

// Is makes errors.Is(err, ErrBranchExists) true.
func (e *BranchExistsError) Is(target error) bool { return target == ErrBranchExists }

// Unwrap returns the read-back failure, if any.
func (e *BranchExistsError) Unwrap() error { return e.Err }
