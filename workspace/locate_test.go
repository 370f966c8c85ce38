package workspace

import (
	"strings"
	"testing"
)

// Endpoint and instance states: ACTIVE and IDLE (and an instance's AVAILABLE or
// STARTING) connect, an IDLE one waking on connect; the rest are clear errors.
func TestLocation_StatesThatCannotConnectSayWhy(t *testing.T) {
	const ep = "projects/p/branches/b/endpoints/e"
	for _, ok := range []string{"", "ACTIVE", "IDLE", "AVAILABLE", "STARTING", "UPDATING", "FAILING_OVER"} {
		if err := (Location{Endpoint: ep, State: ok}).CheckState(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for state, want := range map[string]string{
		"INIT":     "ACTIVE or IDLE",
		"DEGRADED": "DEGRADED",
		"STOPPED":  "start it",
		"DELETING": "DELETING and cannot take connections",
	} {
		err := (Location{Endpoint: ep, State: state}).CheckState()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ep) {
			t.Errorf("%s: %v", state, err)
		}
	}
}
