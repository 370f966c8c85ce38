package lakebasetest

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/lakebase-go/lakebase/workspace"
)

// Behaviours of the real service that clients must cope with, each a knob of
// Options (and a flag of lakebase-local), on by default where Databricks does it.

// Credential expiry formats (Options.CredentialExpiryFormat). Databricks documents
// RFC 3339 for Autoscaling and leaves the Provisioned format undocumented.
const (
	ExpiryRFC3339     = "rfc3339"      // 2026-11-23T12:00:00Z
	ExpiryRFC3339Nano = "rfc3339nano"  // 2026-11-23T12:00:00.123456789Z (the default)
	ExpiryEpoch       = "epoch"        // seconds, as a JSON number
	ExpiryEpochMillis = "epoch-millis" // milliseconds, as a JSON number
	ExpiryNone        = "none"         // no expiry field at all
)

// DefaultPageSize is how many items a list call answers per page unless
// Options.PageSize says otherwise.
const DefaultPageSize = 50

// expiryValue renders a credential expiry in the configured format; ok is false when
// the field must be left out.
func (s *Server) expiryValue(t time.Time) (v any, ok bool) {
	switch s.opts.CredentialExpiryFormat {
	case ExpiryRFC3339:
		return t.UTC().Format(time.RFC3339), true
	case ExpiryEpoch:
		return t.Unix(), true
	case ExpiryEpochMillis:
		return t.UnixMilli(), true
	case ExpiryNone:
		return nil, false
	}
	return t.UTC().Format(time.RFC3339Nano), true
}

// invalidTokenStatus is the HTTP status of a refused workspace token: 403 unless set,
// as Databricks mostly answers ("Invalid access token").
func (s *Server) invalidTokenStatus() int {
	if s.opts.InvalidTokenStatus == http.StatusUnauthorized {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// --- scale to zero ---

// endpointState is the Autoscaling endpoint's status.current_state: ACTIVE, or IDLE
// when it has had no session for ScaleToZero (and until a wake finishes).
func (s *Server) endpointState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpointStateLocked(time.Now())
}

func (s *Server) endpointStateLocked(now time.Time) string {
	if !s.wakeUntil.IsZero() {
		if now.Before(s.wakeUntil) {
			return "IDLE" // waking
		}
		s.wakeUntil = time.Time{}
		s.lastActive = now
		s.suspended = false
	}
	if s.suspended || s.opts.ScaleToZero > 0 && s.sessions == 0 && now.Sub(s.lastActive) >= s.opts.ScaleToZero {
		return "IDLE"
	}
	return "ACTIVE"
}

// admit is asked by the front door for each new session: "" to go on, or the reason
// the compute cannot take it yet (a wake has started).
func (s *Server) admit() string {
	if s.disabled.Load() {
		return "the endpoint is disabled"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != "" {
		return s.downRefusal // a restart or failover: the compute is down
	}
	now := time.Now()
	if s.endpointStateLocked(now) == "IDLE" {
		if s.wakeUntil.IsZero() {
			wake := s.opts.WakeDelay
			if wake <= 0 {
				wake = time.Second
			}
			s.wakeUntil = now.Add(wake)
			s.wakes++
		}
		return "the database system is starting up"
	}
	s.sessions++
	s.lastActive = now
	return ""
}

// SetEndpointDisabled disables the Autoscaling endpoint (spec.disabled; it reports
// IDLE), or enables it again: while disabled the front door answers every login
// 57P03, and the endpoint never wakes.
func (s *Server) SetEndpointDisabled(on bool) { s.disabled.Store(on) }

// leave is told when a session ends.
func (s *Server) leave() {
	s.mu.Lock()
	s.sessions--
	s.lastActive = time.Now()
	s.mu.Unlock()
}

// Suspend scales the endpoint to zero now, whatever sessions remain (with or
// without Options.ScaleToZero): the API reports IDLE and the next connection starts
// a wake of Options.WakeDelay, answered 57P03 meanwhile.
func (s *Server) Suspend() {
	s.mu.Lock()
	s.suspended = true
	s.wakeUntil = time.Time{}
	s.mu.Unlock()
}

// Wakes returns how many times the endpoint was woken from IDLE.
func (s *Server) Wakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakes
}

// --- pages ---

// page answers one page of items for a list call: page_token is the index of the
// first item, next_page_token is set while items remain.
func (s *Server) page(r *http.Request, items []any) ([]any, string) {
	size := s.opts.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("page_token"))
	if ps, err := strconv.Atoi(r.URL.Query().Get("page_size")); err == nil && ps > 0 && ps < size {
		size = ps
	}
	if start < 0 || start > len(items) {
		start = len(items)
	}
	end := min(start+size, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next
}

// decoyName is the i-th decoy project's name.
func decoyName(i int) string {
	return workspace.ProjectName{ID: fmt.Sprintf("decoy-%04d", i)}.String()
}

// decoyEndpoint is the endpoint of a decoy project.
func decoyEndpoint(project workspace.ProjectName) map[string]any {
	return map[string]any{
		"name": workspace.BranchName{Project: project.ID, ID: "main"}.Endpoint("primary").String(),
		"uid":  "ep-" + project.ID,
		"spec": map[string]any{"endpoint_type": "ENDPOINT_TYPE_READ_WRITE"},
		"status": map[string]any{
			"current_state": "IDLE",
			"endpoint_type": "ENDPOINT_TYPE_READ_WRITE",
			"hosts": map[string]any{
				"host":                   "ep-" + project.ID + ".database.invalid",
				"read_write_pooled_host": "ep-" + project.ID + "-pooler.database.invalid",
			},
		},
	}
}
