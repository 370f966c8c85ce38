package workspace

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DefaultLifetime is assumed for a credential whose answer gives no expiry: short,
// never "forever".
const DefaultLifetime = 15 * time.Minute

// DatabaseCredential is a Lakebase database credential: the Postgres password of
// an OAuth identity. Its fmt forms hide the token.
type DatabaseCredential struct {
	Token  string
	Expiry time.Time
}

// String redacts the credential.
func (c DatabaseCredential) String() string {
	return "workspace.DatabaseCredential{expiry: " + c.Expiry.Format(time.RFC3339) + "}"
}

// Format redacts the credential for every fmt verb.
func (c DatabaseCredential) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// Time reads a time the way the service may write it: RFC 3339 with or without a
// fraction, or a number of seconds or milliseconds since the epoch (as a JSON
// number or string). Absent or unreadable, it is zero.
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler; it never fails, so an odd expiry
// cannot make a credential unusable (OrDefault then applies).
func (t *Time) UnmarshalJSON(b []byte) error {
	t.Time = ParseTime(strings.Trim(string(b), `"`))
	return nil
}

// ParseTime parses what Time accepts; zero when it cannot.
func ParseTime(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" || v == "null" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if tm, err := time.Parse(layout, v); err == nil {
			return tm
		}
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
		if f > 1e12 { // milliseconds (a seconds value this large is past year 33000)
			return time.UnixMilli(int64(f))
		}
		return time.Unix(int64(f), 0)
	}
	return time.Time{}
}

// OrDefault is the time, or now plus DefaultLifetime when it is zero.
func (t Time) OrDefault(now time.Time) time.Time {
	if t.IsZero() {
		return now.Add(DefaultLifetime)
	}
	return t.Time
}

// EndpointType is the type of an Autoscaling endpoint.
type EndpointType string

// Endpoint types.
const (
	EndpointTypeReadWrite EndpointType = "ENDPOINT_TYPE_READ_WRITE"
	EndpointTypeReadOnly  EndpointType = "ENDPOINT_TYPE_READ_ONLY"
)

// EndpointState is the current_state of an Autoscaling endpoint.
type EndpointState string

// Endpoint states: IDLE endpoints have scaled to zero and wake on connect.
const (
	EndpointStateActive   EndpointState = "ACTIVE"
	EndpointStateIdle     EndpointState = "IDLE"
	EndpointStateInit     EndpointState = "INIT"
	EndpointStateDegraded EndpointState = "DEGRADED"
)

// InstanceState is the state of a Provisioned instance.
type InstanceState string

// Instance states.
const (
	InstanceStateAvailable   InstanceState = "AVAILABLE"
	InstanceStateStarting    InstanceState = "STARTING"
	InstanceStateUpdating    InstanceState = "UPDATING"
	InstanceStateFailingOver InstanceState = "FAILING_OVER"
	InstanceStateStopped     InstanceState = "STOPPED"
	InstanceStateDeleting    InstanceState = "DELETING"
	InstanceStateFailed      InstanceState = "FAILED"
)

// Instance is a Provisioned database instance.
type Instance struct {
	Name         string        `json:"name"`
	State        InstanceState `json:"state"`
	ReadWriteDNS string        `json:"read_write_dns"`
	ReadOnlyDNS  string        `json:"read_only_dns"`
}

// Endpoint is an Autoscaling endpoint.
type Endpoint struct {
	Name   string `json:"name"`
	Status struct {
		CurrentState EndpointState `json:"current_state"`
		EndpointType EndpointType  `json:"endpoint_type"`
		Hosts        struct {
			Host         string `json:"host"`
			ReadOnlyHost string `json:"read_only_host"`
			// The pooled hosts: Lakebase's PgBouncer in transaction mode.
			ReadWritePooledHost string `json:"read_write_pooled_host"`
			ReadOnlyPooledHost  string `json:"read_only_pooled_host"`
		} `json:"hosts"`
	} `json:"status"`
	Spec struct {
		EndpointType EndpointType `json:"endpoint_type"`
		// Disabled: the endpoint takes no connections and does not wake on one.
		Disabled bool `json:"disabled,omitempty"`
	} `json:"spec"`
}

// Type is the endpoint's type, from its status, else its spec.
func (e Endpoint) Type() EndpointType {
	if e.Status.EndpointType != "" {
		return e.Status.EndpointType
	}
	return e.Spec.EndpointType
}

// Branch is an Autoscaling branch.
type Branch struct {
	Name             string `json:"name"`
	CreateTime       string `json:"create_time"` // RFC 3339
	ExpireTime       string `json:"expire_time"`
	Default          bool   `json:"default"`
	EffectiveDefault bool   `json:"effective_default"`
	Status           struct {
		Default      bool   `json:"default"`
		CurrentState string `json:"current_state"`
		IsProtected  bool   `json:"is_protected"`
		SourceBranch string `json:"source_branch"`
		ExpireTime   string `json:"expire_time"` // RFC 3339; "" for a branch that lives until deleted
	} `json:"status"`
	Spec struct {
		IsProtected  bool   `json:"is_protected"`
		SourceBranch string `json:"source_branch"`
	} `json:"spec"`
}

// Source is the branch it was made from (projects/<p>/branches/<b>; status, else
// spec), or "" for a project's root branch.
func (b Branch) Source() string { return cmp.Or(b.Status.SourceBranch, b.Spec.SourceBranch) }

// Protected reports whether the branch is protected from deletion
// (status.is_protected, or spec.is_protected).
func (b Branch) Protected() bool { return b.Status.IsProtected || b.Spec.IsProtected }

// IsDefault reports whether the branch is its project's default branch (the field
// has been at the top level and under status in different API versions).
func (b Branch) IsDefault() bool { return b.Default || b.EffectiveDefault || b.Status.Default }
